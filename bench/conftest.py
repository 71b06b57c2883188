# Scratch trees (the extracted baseline checkout, the peers' venvs) hold tests of their own.
collect_ignore = ["work", ".venv-peers"]
