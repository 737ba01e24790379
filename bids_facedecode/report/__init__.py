"""HTML reports: Jinja2 templates shipped as package data, CSS inlined, figures embedded."""

from __future__ import annotations

import base64
import io
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


def figure_to_data_uri(fig, dpi: int = 90) -> str:
    """Render a matplotlib figure to an embedded PNG ``data:`` URI and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_to_data_uri(data: bytes) -> str:
    """Embed PNG bytes as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render(template: str, **context: Any) -> str:
    """Render one of the package's templates."""
    return _ENV.get_template(template).render(**context)
