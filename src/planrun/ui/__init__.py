"""planrun's web dashboard (``planrun ui``): a front end on the monitor and api.

Like the CLI, it reads runs only through :mod:`planrun.monitor` and acts only through
:mod:`planrun.api`; its third-party libraries (Starlette, uvicorn) stay inside this
package and load only when the dashboard is served. This module itself imports none
of them, so the CLI can name the dashboard's settings without loading it.
"""

from __future__ import annotations

__all__ = ["TOKEN_ENV"]

#: The environment variable that holds the dashboard's access token.
TOKEN_ENV = "PLANRUN_UI_TOKEN"  # noqa: S105 - a variable name, not a secret
