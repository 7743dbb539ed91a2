"""The one error type the kit raises for bad input and missing models."""


class KitError(ValueError):
    """Bad input or an unavailable model, with a message that names the fix.

    A subclass of ValueError, so ``except ValueError`` catches it too.
    """
