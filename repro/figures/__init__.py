"""One short recipe per figure, registered by id (`repro.registry.figure`). A recipe reads its settings from
`ctx.knobs`, calls `probe.experiments`, picks and arranges panels, and records the numbers `check` reads."""
from repro.figures import (fig01, fig02, fig03, fig04, fig05, fig06, fig07, fig08, fig09, fig10,  # noqa: F401
                           fig11, fig12, fig13, fig14, fig15, fig16, fig17, fig18, fig19, fig20)
