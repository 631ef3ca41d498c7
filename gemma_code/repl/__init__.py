"""The interactive chat (`gemma-code`, `gemma-code chat`): prompt, slash commands, sessions.

`loop.Repl` runs it; `conversation` keeps the prompt stable for KV-cache reuse; `store` keeps
sessions on disk; `commands` and `code_commands` hold the slash commands.
"""
