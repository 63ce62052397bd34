"""Experiments: one command from the corpus to the report comparing dense, Switch and
Omni-router models (`omnirouter experiment CONFIG`, see `pipeline`)."""
