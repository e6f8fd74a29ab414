/* The API reference page (/api/docs): Swagger UI rendering the app's own OpenAPI document,
   from this file rather than an inline script, under the site's Content-Security-Policy. */
(function () {
  "use strict";
  const root = document.getElementById("swagger-ui");
  if (!root || typeof SwaggerUIBundle !== "function") {
    return;
  }
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    domNode: root,
    deepLinking: true,
    validatorUrl: null, // no call to the public validator: the page works offline
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
