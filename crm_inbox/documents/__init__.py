"""The customer file (Kundenakte): files staff upload to a person or a company, kept in the database or a
directory, shown on the timeline, downloaded, renamed and removed."""
