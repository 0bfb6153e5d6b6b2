# Each job's settings, resolved once from the config (sdclr.config.job_settings) into a file
# that is the job's input: the one way a setting reaches the code. The params are the settings
# as canonical JSON, so this rule reruns exactly when a job's settings change (not when the
# YAML's key order does), and the jobs reading the file rerun because it changed. Labels, row
# order and colours are only in the report's settings: renaming a method retrains nothing.


rule job_settings:
    output:
        paths.SETTINGS,
    log:
        "results/logs/settings/{dataset}/{job}.log",
    localrule: True
    params:
        settings=job_settings_json,
    run:
        write_settings(output[0], params.settings)


rule report_settings:
    output:
        paths.REPORT_SETTINGS,
    log:
        "results/logs/settings/report.log",
    localrule: True
    params:
        settings=canonical_json(sdclr_config.report_settings(config)),
    run:
        write_settings(output[0], params.settings)
