"""The status page (docs/operations.md "Status page"): static HTML, JS modules and CSS served by
the app's HTTP functions, reading the requests API from the browser."""
