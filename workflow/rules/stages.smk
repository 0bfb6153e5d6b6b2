# Every stage of sdclr/pipeline/dag.py as a rule: its script, inputs, outputs, log, threads and
# the resources the config asks for it. dvc.yaml is made from the same table (`make dvc`), so
# both tools run the same commands on the same files. A stage is added there, not here.
# A rule's shell command is evaluated twice: here, for the rule, and when its job runs, after
# the loop has ended, where the loop variable names the last stage. So it is looked up by
# name: the job's `rule` (a local of the job's function), or the stage being defined.

STAGE_COMMANDS = {stage.name: stage_command(stage) for stage in dag.STAGES}

for _stage in dag.STAGES:

    rule:
        name:
            _stage.name
        input:
            **stage_inputs(_stage),
        output:
            **stage_outputs(_stage),
        log:
            _stage.log,
        localrule: _stage.local
        conda:
            "../../environment.yml"
        threads: rule_threads(_stage.resource_rule) if not _stage.local else 1
        resources:
            **(rule_resources(_stage.resource_rule) if not _stage.local else {}),
        params:
            **stage_params(_stage),
        shell:
            STAGE_COMMANDS[locals().get("rule", _stage.name)]
