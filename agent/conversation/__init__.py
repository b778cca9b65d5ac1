"""The conversation engine behind ``serendip chat``, ``serendip ask`` and the web page: turns, slash
commands, offline question forms, tool-call events and saved sessions. No terminal code lives here."""
