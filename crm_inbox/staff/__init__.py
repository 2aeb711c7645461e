"""Staff users: their addresses, roles, passwords, API tokens and login sessions (service), and the limits on
failed logins (login_limits).

May import the shared modules and mail's address rules.
"""
