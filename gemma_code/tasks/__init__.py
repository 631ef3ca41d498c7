"""One module per job (ask, edit, explain, review): build a prompt, interpret the reply.

Nothing here prints; everything is usable from Python.
"""
