"""One module per pipeline stage: read its input files, call the library, write its outputs.

The scripts in ``scripts/`` parse arguments and call these; the workflow's rules and DVC's
stages (both made from ``sdclr.pipeline.dag``) call the scripts. Every output is written
atomically (``sdclr.io``). A stage imports only what it uses, and this package imports none of
its modules: the code a job runs, and so what reruns it (``sdclr.pipeline.code``), is its
stage's module and what that imports.
"""
