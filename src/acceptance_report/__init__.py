"""How the behave run reports: the HTML page and Cucumber JSON formatters.

Unlike ``openshell_acceptance``, this package knows behave: it holds the
formatters named in ``[tool.behave.formatters]`` of ``pyproject.toml``.
"""
