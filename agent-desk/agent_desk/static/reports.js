// Report pages: draw the table's chart (bars for counts, a line for rates on a percent axis).
(function () {
  "use strict";
  const canvas = document.getElementById("report-chart");
  if (!canvas || typeof Chart === "undefined") { return; }
  const data = JSON.parse(canvas.dataset.chart);
  const colours = ["#b71c1c", "#1565c0", "#2e7d32", "#ef6c00", "#6a1b9a"];
  let n = 0;
  const datasets = [];
  for (const [label, values] of Object.entries(data.bars || {})) {
    datasets.push({ type: "bar", label, data: values, backgroundColor: colours[n++ % colours.length], yAxisID: "y", order: 2 });
  }
  for (const [label, values] of Object.entries(data.line || {})) {
    const colour = colours[n++ % colours.length];
    // Lines over the bars (a lower order is drawn on top), with visible points for short series.
    datasets.push({ type: "line", label, data: values, borderColor: colour, backgroundColor: colour, pointRadius: 4, yAxisID: "rate", spanGaps: true, order: 1 });
  }
  const scales = { y: { beginAtZero: true, ticks: { precision: 0 } } };
  if (data.line) { scales.rate = { position: "right", min: 0, max: 100, title: { display: true, text: "%" } }; }
  new Chart(canvas, { data: { labels: data.labels, datasets }, options: { animation: false, maintainAspectRatio: false, scales } });
})();
