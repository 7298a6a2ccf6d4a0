"""Static checks of infra/ (Bicep) and azure.yaml against the app's settings, bindings and roles."""
