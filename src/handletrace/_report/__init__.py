"""Reports: the report model built from a snapshot and its diagnosis, its JSON codec, and the
text, HTML, Graphviz and timeline renderings. Imports ``_core``, and ``_analysis`` for its
value types."""
