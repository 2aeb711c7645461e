import sys

from crm_inbox.cli import main

sys.exit(main())
