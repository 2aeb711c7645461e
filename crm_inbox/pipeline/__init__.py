"""The mail pipeline: small named steps run in order over one ``MailContext`` (after Mailman 3).

Each step reads and writes the context; a step may ``ctx.stop(reason)`` to end processing early
(the message is then marked ignored with that reason). Steps raise to fail the message; the runner logs
and stores the failing step's name (``inbound_messages.failed_step``).
"""

from crm_inbox.pipeline.context import MailContext, Step
from crm_inbox.pipeline.steps import DEFAULT_STEPS, run_pipeline

__all__ = ["DEFAULT_STEPS", "MailContext", "Step", "run_pipeline"]
