"""One short recipe per figure, registered by id (`repro.registry.figure`); `repro.catalog` loads them all. A
recipe reads its settings from `ctx.knobs`, calls `probe.experiments`, picks and arranges panels, and records the
numbers `check` reads."""
