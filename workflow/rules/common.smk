# The plan of the config (sdclr.pipeline.plan: validated, every job's settings resolved, in a
# cached separate process, so parsing loads no torch), wildcard constraints, and the helpers
# that turn the stage table (sdclr/pipeline/dag.py) into rules.

import hashlib
import os
import shlex
import sys
from pathlib import Path

from snakemake.logging import logger

from sdclr.pipeline import joblog
from sdclr.pipeline import paths
from sdclr.pipeline import resources as sdclr_resources
from sdclr.errors import ConfigError
from sdclr.names import NAME
from sdclr.io import write_json
from sdclr.pipeline import dag
from sdclr.pipeline.plan import canonical_json, load_plan
from sdclr.provenance import describe as describe_provenance
from sdclr.provenance import provenance

# Validate the user's config and replace it by its per-dataset form; keep every job's settings.
try:
    PLAN = load_plan(dict(config))
except ConfigError as err:
    _source = ", ".join(map(str, workflow.overwrite_configfiles or ["config/config.yaml"]))
    print(f"Error in the config ({_source}): {err}", file=sys.stderr)
    sys.exit(1)
config.clear()
config.update(PLAN["config"])
# What the HTML report says made it (workflow/report/workflow.rst); each output has its own.
config["provenance"] = describe_provenance(provenance())

_NAME = NAME  # sdclr/names.py: the one rule, the schema's too


wildcard_constraints:
    dataset=_NAME,
    method=_NAME,
    split=r"\d+",
    seed=r"\d+",
    probe="|".join(paths.registry(config, "probes")),
    analysis="|".join(paths.registry(config, "analyses")),
    stage="|".join(dag.REPORT_STAGES),
    pool=_NAME,
    job=f"dataset|split|features|analysis|(pretrain|removal|pool)/{_NAME}|probe/("
    + "|".join(paths.registry(config, "probes"))
    + ")",


def repo_file(name):
    """A file of the repository (a script, the paper's numbers), next to the Snakefile, so that
    `--directory` can put results elsewhere."""
    return str(Path(workflow.basedir) / name)


def _job_resources(rule, wildcards):
    """The config's resources of ``rule`` (sdclr.pipeline.resources) for this job's dataset; a job of
    no single dataset (tables, figures) gets the most that any dataset's jobs of it ask."""
    datasets = [wildcards.dataset] if "dataset" in wildcards.keys() else list(config["datasets"])
    jobs = [
        sdclr_resources.load_resources(config["datasets"][name]["resources"])[rule]
        for name in datasets
    ]
    return sdclr_resources.combined(jobs)


def rule_threads(rule):
    """A rule's threads, from its resources in the config."""
    return lambda wildcards: sdclr_resources.threads(_job_resources(rule, wildcards))


def rule_resources(rule):
    """A rule's resources from the config (``resources: **rule_resources("pretrain")``): one
    function per Snakemake resource; one that does not apply to a job evaluates to None."""

    def resource(key):
        return lambda wildcards, attempt: sdclr_resources.scheduler_resources(
            _job_resources(rule, wildcards), attempt
        ).get(key)

    keys = ("mem_mb", "runtime", "gpu", "cpus_per_gpu", "gpu_model", "slurm_partition")
    return {key: resource(key) for key in keys}


def is_removal_run(wildcards):
    method = config["datasets"][wildcards.dataset]["methods"][wildcards.method]
    return "remove_difficult" in method


def _formatted(template, wildcards):
    """``template`` with the job's wildcards (and a removal run's ``{selector}``)."""
    values = dict(wildcards.items())
    if "{selector}" in template:
        method = config["datasets"][values["dataset"]]["methods"][values["method"]]
        values["selector"] = method["remove_difficult"]["selector"]
    return template.format(**values)


def _input(spec, wildcards):
    if isinstance(spec, dag.Collected):
        return spec.files(config, wildcards)
    if isinstance(spec, dag.RepoFile):
        return repo_file(spec.path)
    if spec.only == "pool":  # a COLT run's prepared pool file (none: no pool file)
        return paths.pool_of(config, wildcards.dataset, wildcards.method) or []
    if spec.only == "removal" and not is_removal_run(wildcards):
        return []
    return _formatted(spec.path, wildcards)


def warn_missing_pools():
    """One line per COLT pool file the config names that is not there. Planning a run that
    needs it stops before any job, with Snakemake's "Missing input files for rule
    prepare_pool" naming the file; a plan that needs no pool (re-aggregating tables from
    records already there) goes on, so this is a warning here, not an error."""
    for dataset, name in paths.pool_runs(config):
        source = paths.pool_sources(config, dataset)[name]
        if not Path(source).exists():
            users = [
                m
                for m in config["datasets"][dataset]["methods"]
                if paths.pool_of(config, dataset, m)
                == paths.POOL.format(dataset=dataset, pool=name)
            ]
            keys = ", ".join(f"methods.{m}.colt.pool" for m in users)
            logger.warning(f"{keys}: the OOD pool file {source} does not exist")


warn_missing_pools()


def stage_inputs(stage):
    """The rule's named inputs: a function of the wildcards for each."""
    return {name: (lambda w, s=spec: _input(s, w)) for name, spec in stage.inputs.items()}


def stage_outputs(stage):
    """The rule's named outputs (the persistent checkpoint is the run's, not an output: a
    failed attempt keeps it for the next to resume from); report() where the stage says."""
    outputs = {}
    for name, spec in dag.stage_outputs(stage, config).items():
        if spec.persist or spec.only != "all":  # some runs' only: not declarable per wildcard
            continue
        path = spec.path
        if spec.report:
            path = report(path, category=spec.report[0], caption=spec.report[1])
        outputs[name] = path
    return outputs


def stage_params(stage):
    """The command's arguments (``--seed``, ``--out-dir``, ...) from the wildcards, and the
    ``--removal <record>`` and ``--pool <file>`` options that only a removal run's and a COLT
    run's inputs give."""
    params = {
        name: (lambda w, t=template: _formatted(t, w)) for name, template in stage.args.items()
    }
    for name, spec in stage.inputs.items():
        if isinstance(spec, dag.File) and spec.only != "all":
            flag = dag.flag_of(name, spec)
            params[f"{name}_option"] = lambda w, s=spec, f=flag: (
                f"{f} {shlex.quote(_input(s, w))}" if _input(s, w) else ""
            )
    return params


def stage_command(stage):
    """The stage's command (dag.py: one ``--<flag> <path>`` per input and output), after the
    attempt line in its log (sdclr/pipeline/joblog.py)."""
    parts = ["python", shlex.quote(repo_file(f"scripts/{stage.script}"))]
    for name, spec in stage.inputs.items():
        flag = dag.flag_of(name, spec)
        if flag is None:
            continue
        if isinstance(spec, dag.File) and spec.only != "all":
            parts.append(f"{{params.{name}_option}}")
        else:
            parts.append(f"{flag} {{input.{name}:q}}")
    for name, spec in dag.stage_outputs(stage, config).items():
        flag = dag.flag_of(name, spec)
        if flag is not None and not spec.persist and spec.only == "all":
            parts.append(f"{flag} {{output.{name}:q}}")
    for name in stage.args:
        parts.append(f"{dag.flag_of(name)} {{params.{name}:q}}")
    if stage.threads:
        parts.append("--threads {threads}")
    parts.append("2>> {log:q}")
    return joblog.logged(" ".join(parts), repo_file("scripts/start_log.sh"))


def final_targets():
    return (
        paths.table_files(config)
        + list(paths.FIGURES.values())
        + list(paths.comparison_files(config).values())
        + list(paths.SUMMARY.values())
        + paths.analysis_report_files(config)
        + paths.removal_figures(config)
    )


def job_settings(wildcards):
    """A job's resolved settings file, as the plan has it (sdclr/pipeline/resolve.py)."""
    return PLAN["settings"][wildcards.dataset][wildcards.job]


def report_stage_settings(wildcards):
    return PLAN["report"][wildcards.stage]


def digest_of(settings_of):
    """The params of a settings rule: the hash of the settings' canonical JSON, which changes
    exactly when a value or a code file in them does (and reads short in --reason)."""
    return lambda wildcards: hashlib.sha256(
        canonical_json(settings_of(wildcards)).encode()
    ).hexdigest()


def record_in_dvc():
    """After a successful run of DVC's own config, record the outputs in DVC, once.

    dvc.yaml reads config/config.yaml, so runs of another --configfile are not recorded.
    SDCLR_DVC_RECORD=0 turns recording off.
    """
    if os.environ.get("SDCLR_DVC_RECORD", "1") == "0":
        return
    if workflow.overwrite_configfiles:
        logger.info("DVC: not recording (dvc.yaml tracks config/config.yaml, not --configfile)")
        return
    if not Path(".dvc").is_dir():
        return
    shell(f"python {shlex.quote(repo_file('scripts/dvc_record.py'))}")
