"""The plumbing every tool runs on: the table model, the session (a loaded table plus derived columns and
artifacts), the registry that turns typed functions into validated tools, the sandbox worker and the
in-process runner, the result contract and the typed findings contracts. The analyses themselves live
beside this package in ``serendip.tools``."""
