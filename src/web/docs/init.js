// Starts Swagger UI on statusd's OpenAPI description. Everything it loads is served
// by statusd itself (no CDN, no validator service): the page works offline.
window.addEventListener('load', function () {
  window.ui = SwaggerUIBundle({
    url: 'v1/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    tryItOutEnabled: false,
  });
});
