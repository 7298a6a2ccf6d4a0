"""HTTP triggers: the status page (docs/operations.md "Status page"), thin over ``shared.statuspage``.

The page needs a function key like the requests API it reads (in Azure, App Service
authentication is in front as well). Its assets are anonymous: they are the same public code for
everyone and hold no data; a ``<script type="module">`` and the modules it imports cannot send
the key, and putting it into their URLs would spread it into logs and caches.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import azure.functions as func

from shared.statuspage.assets import Answer, asset, page

bp = func.Blueprint()  # type: ignore[no-untyped-call]


def _reply(answer: Answer) -> func.HttpResponse:
    # azure.functions adds "; charset=utf-8" to text/* types (azure/functions/http.py
    # HttpResponseConverter.encode), which the page's HTML, JS and CSS are.
    return func.HttpResponse(
        body=answer.body, status_code=answer.status, headers=answer.headers, mimetype=answer.content_type
    )


@bp.function_name("status_page")
@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def status_page(req: func.HttpRequest) -> func.HttpResponse:
    return _reply(page(urlsplit(req.url).path))


@bp.function_name("status_asset")
@bp.route(route="status/assets/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def status_asset(req: func.HttpRequest) -> func.HttpResponse:
    return _reply(asset(req.route_params.get("name", ""), if_none_match=req.headers.get("if-none-match")))
