// Starts Swagger UI on /docs (app/api/docs.py). An external file rather than FastAPI's
// inline <script>, so the docs run under a policy without 'unsafe-inline' scripts.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // No badge from validator.swagger.io: the docs make no request off this server.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
