# Each job's settings file: the job's input, and the one way a setting reaches the code. Its
# content is the plan's (sdclr/pipeline/resolve.py): every setting resolved, defaults included,
# and the code the job runs (a hash per source file). The params are the hash of that content
# as canonical JSON, so this rule reruns exactly when a job's settings or code change (not when
# the YAML's key order does), and the jobs reading the file rerun because it changed. Labels and row
# order are only in the report stages' settings: renaming a method retrains nothing.


rule job_settings:
    output:
        paths.SETTINGS,
    log:
        "results/logs/settings/{dataset}/{job}.log",
    localrule: True
    params:
        digest=digest_of(job_settings),
    run:
        write_json(output[0], job_settings(wildcards))


rule report_settings:
    output:
        paths.REPORT_SETTINGS,
    log:
        "results/logs/settings/report/{stage}.log",
    localrule: True
    params:
        digest=digest_of(report_stage_settings),
    run:
        write_json(output[0], report_stage_settings(wildcards))
