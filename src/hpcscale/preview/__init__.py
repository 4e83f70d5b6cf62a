"""Quick looks at an input or an output: a slice, a max projection or a histogram, as a PNG."""

from hpcscale.preview.select import (
    DEFAULT_BINS,
    MAX_PIXELS,
    Plane,
    Written,
    default_output,
    format_value,
    parse_slices,
    preview,
    select,
)

__all__ = ["DEFAULT_BINS", "MAX_PIXELS", "Plane", "Written", "default_output", "format_value",
           "parse_slices", "preview", "select"]
