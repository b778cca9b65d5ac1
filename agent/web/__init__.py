"""``serendip serve``: a web page (and a JSON API under ``/api``) to upload a table, ask about it, run the
offline tools or a full exploration, and read the reports. One more door onto the same engine: questions
and commands go through :mod:`serendip.agent.conversation`, explorations through
:func:`serendip.agent.explore.explore`, and every tool runs in the sandboxed worker."""
