"""The Functions entry point: wiring only (one Blueprint per trigger, logic in ``shared``)."""

import azure.functions as func

from functions import api, deadletter, dispatch, followup, reconcile, schedules, status
from shared.flows.runtime import check_settings

# A bad app setting fails indexing, naming every bad setting: no function starts, so no request
# is consumed (and poisoned) by an app that cannot handle it. docs/operations.md "Startup".
check_settings()
app = func.FunctionApp()
app.register_functions(dispatch.bp)
app.register_functions(deadletter.bp)
app.register_functions(reconcile.bp)
app.register_functions(followup.bp)
app.register_functions(schedules.bp)
app.register_functions(api.bp)
app.register_functions(status.bp)
