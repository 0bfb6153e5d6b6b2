"""The workflow's glue: the stages both tools run (``dag``), the code and settings each job
depends on (``code``, ``resolve``), the Snakefile's cached view of them (``plan``), what every
output records of how it was made (``provenance``), and dvc.yaml made from the stages
(``dvc``). Only ``resolve`` imports torch; the Snakefile imports none of it."""
