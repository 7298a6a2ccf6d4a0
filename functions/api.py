"""HTTP triggers: the requests API (docs/openapi.yaml), thin over ``shared.ledger.api``.

Function keys guard every route (``auth_level=FUNCTION``); in Azure, App Service
authentication (Entra ID) sits in front as well, so callers may send a bearer token. With a teams
file, the caller (its Entra identity or function key) decides which requests it sees and cancels.
"""

from __future__ import annotations

import azure.functions as func

from functions.bindings import traced
from shared.flows.runtime import runtime
from shared.ledger.responses import ApiResponse
from shared.teams.identity import caller_of
from shared.teams.model import Caller

bp = func.Blueprint()  # type: ignore[no-untyped-call]


def _caller(req: func.HttpRequest, easy_auth: bool) -> Caller:
    """Who calls (``shared.teams.identity``): the Easy Auth principal and the function key."""
    return caller_of(dict(req.headers), dict(req.params), easy_auth=easy_auth)


def _reply(response: ApiResponse) -> func.HttpResponse:
    return func.HttpResponse(
        body=response.text(),
        status_code=response.status,
        headers=response.headers,
        mimetype=response.content_type,
        charset="utf-8",
    )


@bp.function_name("submit_request")
@bp.route(route="requests", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def submit_request(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """``context``: the host's trace context (its HTTP request span), the parent of the request's
    receive span (``shared.telemetry.signals.invocation``)."""
    api = runtime().api()
    body, content_type = req.get_body(), req.headers.get("content-type")
    caller = _caller(req, api.settings.easy_auth)
    with traced(context):
        return _reply(api.handle(lambda: api.submit(body, content_type=content_type, caller=caller)))


@bp.function_name("list_requests")
@bp.route(route="requests", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_requests(req: func.HttpRequest) -> func.HttpResponse:
    api = runtime().api()
    params = dict(req.params)
    caller = _caller(req, api.settings.easy_auth)
    return _reply(api.handle(lambda: api.list(params, caller=caller)))


@bp.function_name("get_request")
@bp.route(route="requests/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_request(req: func.HttpRequest) -> func.HttpResponse:
    api = runtime().api()
    key = req.route_params.get("id", "")
    caller = _caller(req, api.settings.easy_auth)
    return _reply(api.handle(lambda: api.status(key, caller=caller)))


@bp.function_name("cancel_request")
@bp.route(route="requests/{id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def cancel_request(req: func.HttpRequest) -> func.HttpResponse:
    api = runtime().api()
    key = req.route_params.get("id", "")
    caller = _caller(req, api.settings.easy_auth)
    return _reply(api.handle(lambda: api.cancel(key, caller=caller)))


@bp.function_name("get_summary")
@bp.route(route="summary", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_summary(req: func.HttpRequest) -> func.HttpResponse:
    api = runtime().api()
    params = dict(req.params)
    caller = _caller(req, api.settings.easy_auth)
    return _reply(api.handle(lambda: api.summary(params, caller=caller)))
