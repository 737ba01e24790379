"""HTML reports: Jinja2 templates shipped as package data, CSS inlined, figures embedded."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable
from typing import Any

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("bids_facedecode", "report/templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if 0 < abs(value) < 10 ** -digits:
            return f"{value:.1e}"
        return f"{value:.{digits}f}"
    return str(value)


_ENV.filters["fmt"] = _fmt
LOG = logging.getLogger(__name__)
#: Resolution of the embedded PNG figures (a demo report stays at a few MB).
DPI = 80


def figure_png(fig, dpi: int = DPI) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figure_to_data_uri(fig, dpi: int = DPI) -> str:
    """Render a matplotlib figure to an embedded PNG ``data:`` URI and close it."""
    return png_to_data_uri(figure_png(fig, dpi))


def png_to_data_uri(data: bytes) -> str:
    """Embed PNG bytes as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render(template: str, **context: Any) -> str:
    """Render one of the package's templates."""
    return _ENV.get_template(template).render(**context)


class SafeFigures:
    """Draws figures one by one; a figure that fails becomes a line in ``problems``, not a crash."""

    def __init__(self, dpi: int = DPI):
        self.dpi = dpi
        self.problems: list[str] = []

    def add(self, name: str, draw: Callable[[], Any]) -> str | None:
        """Call ``draw()`` (returns a matplotlib Figure) and embed it; None when it fails."""
        import matplotlib.pyplot as plt

        try:
            return figure_to_data_uri(draw(), self.dpi)
        except Exception as exc:  # noqa: BLE001 - one bad figure must not take the report down
            plt.close("all")
            LOG.warning("report figure '%s' failed: %s: %s", name, type(exc).__name__, exc)
            self.problems.append(f"figure '{name}' could not be drawn: {type(exc).__name__}: {exc}")
            return None
