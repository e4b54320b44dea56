"""`optout serve`: the HTTP API privacy staff and the systems that send requests use. A thin
adapter over the library's `Session`: every call is authenticated by a bearer token of the
catalog's principals, authorized by the same role table, and written to the same audit log
as the command line's; the server holds the catalog key, clients hold tokens only.

Requests submitted here go through the worker's path (plan under the submitter's name, held
for approval, applied by the server's own principal, cascaded), run by the server's intake
thread (`optout/server/intake.py`)."""
