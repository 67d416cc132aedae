"""What the suites share: real services and workers (`services`), the installed CLI (`cli`),
fakes of our own interfaces for unit tests (`fakes`), the fault scenarios (`faults`) and
generated malformed events (`malformed`). Fixtures themselves live in the conftest files."""
