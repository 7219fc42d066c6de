// Draws the usage charts from the page's JSON (no inline script: the page's CSP allows only its own files),
// and asks before a key is revoked.
(function () {
  "use strict";
  var palette = ["#0a6ed1", "#e9730c", "#107e3e", "#925ace", "#bb0000", "#1a9898", "#d04343", "#6b7785"];
  var node = document.getElementById("chart-data");
  if (node && window.Chart) {
    var data = JSON.parse(node.textContent);
    [["chart-keys", data.by_key], ["chart-models", data.by_model]].forEach(function (pair) {
      var canvas = document.getElementById(pair[0]);
      if (!canvas) { return; }
      new window.Chart(canvas, {
        type: "bar",
        data: {
          labels: data.labels,
          datasets: pair[1].map(function (s, i) {
            return { label: s.name, data: s.tokens, backgroundColor: palette[i % palette.length], stack: "t" };
          })
        },
        options: {
          animation: false,
          responsive: true,
          scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, title: { display: true, text: "tokens" } } },
          plugins: { legend: { position: "bottom" } }
        }
      });
    });
  }
  document.querySelectorAll("form.revoke").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm("Revoke the key " + form.dataset.name + "? Clients using it are refused at once.")) {
        event.preventDefault();
      }
    });
  });
})();
