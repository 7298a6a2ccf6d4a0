"""The Functions entry point: wiring only (one Blueprint per trigger, logic in ``shared``)."""

import azure.functions as func

from functions import api, deadletter, dispatch, reconcile, schedules

app = func.FunctionApp()
app.register_functions(dispatch.bp)
app.register_functions(deadletter.bp)
app.register_functions(reconcile.bp)
app.register_functions(schedules.bp)
app.register_functions(api.bp)
