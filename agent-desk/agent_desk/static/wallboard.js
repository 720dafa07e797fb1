// The supervisor wallboard: redraws on every seat or queue event, and every few seconds;
// the charts re-read today's intervals on (re)connect, after seat changes and every 30 s.
// A seat on a call can be listened in on (监听/耳语/强插) from the supervisor's own seat phone.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  function duration(s) {
    if (s == null) { return "—"; }
    return Math.floor(s / 60) + ":" + String(Math.floor(s % 60)).padStart(2, "0");
  }

  function row(cells, state) {
    const tr = document.createElement("tr");
    if (state) { tr.dataset.state = state; }
    for (const cell of cells) {
      const td = document.createElement("td");
      if (cell && cell.state) {
        const span = document.createElement("span");
        span.className = "state";
        span.dataset.state = cell.state;
        span.textContent = cell.text;
        td.append(span);
      } else {
        td.textContent = cell;
      }
      tr.append(td);
    }
    return tr;
  }

  function format(value, kind) {
    if (value == null) { return "—"; }
    if (kind === "percent") { return (value * 100).toFixed(1) + "%"; }
    if (kind === "seconds") { return value.toFixed(1) + " 秒"; }
    return String(value);
  }

  function showFigures(data) {
    document.querySelectorAll("[data-figure]").forEach((td) => {
      const [period, key] = td.dataset.figure.split(".");
      td.textContent = format((data[period] || {})[key], td.dataset.format);
    });
    const alerts = $("alerts");
    alerts.replaceChildren(...(data.alerts || []).map((text) => {
      const div = document.createElement("div");
      div.className = "flash error";
      div.textContent = text;
      return div;
    }));
    const s = data.staffing;
    $("staffing").textContent = s
      ? "按近1小时话务量（每小时 " + s.calls_per_hour + " 通，平均处理 " + s.aht_s + " 秒），" +
        "达到15秒内接通80%需在岗座席 " + s.seats + " 个（" + s.model + "）"
      : "话务量不足，暂无排班建议";
  }

  const STATES = [
    ["ready", "示闲", "#2e7d32"], ["not_ready", "示忙", "#ef6c00"], ["offered", "振铃", "#64b5f6"],
    ["talking", "通话中", "#1565c0"], ["held", "保持", "#0d47a1"], ["wrap_up", "话后处理", "#6a1b9a"],
    ["logged_out", "未签入", "#bdbdbd"],
  ];
  const charts = {};
  function makeCharts() {
    if (typeof Chart === "undefined") { return; }
    const options = { animation: false, maintainAspectRatio: false };
    charts.calls = new Chart($("chart-calls"), {
      type: "bar",
      data: { labels: [], datasets: [
        { label: "呼入人工", data: [], backgroundColor: "#90a4ae" },
        { label: "接通", data: [], backgroundColor: "#1565c0" },
        { label: "放弃", data: [], backgroundColor: "#b71c1c" },
      ] },
      options: { ...options, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    charts.level = new Chart($("chart-service-level"), {
      type: "line",
      data: { labels: [], datasets: [{ label: "15秒接通率 %", data: [], borderColor: "#b71c1c", spanGaps: true }] },
      options: { ...options, scales: { y: { min: 0, max: 100 } } },
    });
    charts.seats = new Chart($("chart-seats"), {
      type: "doughnut",
      data: { labels: STATES.map((s) => s[1]), datasets: [{ data: STATES.map(() => 0), backgroundColor: STATES.map((s) => s[2]) }] },
      options,
    });
  }

  function showSeatChart(seats) {
    if (!charts.seats) { return; }
    charts.seats.data.datasets[0].data = STATES.map(([state]) => seats.filter((s) => s.state === state).length);
    charts.seats.update();
  }

  async function refreshCharts() {
    if (!charts.calls) { return; }
    const response = await fetch("/wallboard/api/charts", { credentials: "same-origin" });
    if (!response.ok) { return; }
    const data = await response.json();
    charts.calls.data.labels = data.labels;
    charts.calls.data.datasets[0].data = data.offered;
    charts.calls.data.datasets[1].data = data.answered;
    charts.calls.data.datasets[2].data = data.abandoned;
    charts.calls.update();
    charts.level.data.labels = data.labels;
    charts.level.data.datasets[0].data = data.service_level;
    charts.level.update();
    $("charts").dataset.offered = data.today.offered;
  }

  // Seat changes come in bursts (a call ends: talking -> wrap-up): read the charts once per burst.
  let chartTimer = null;
  function soonCharts() {
    clearTimeout(chartTimer);
    chartTimer = setTimeout(refreshCharts, 500);
  }

  // Supervision: the mode this page put a call in, from the softswitch's results.
  const SUPERVISE = [["listen", "监听"], ["whisper", "耳语"], ["barge", "强插"], ["stop_listening", "停止"]];
  const MODES = { listen: "监听中", whisper: "耳语中", barge: "强插中" };
  const modes = new Map();
  function superviseCell(s) {
    const td = document.createElement("td");
    if (!s.call_id) { return td; }
    const box = document.createElement("div");
    box.className = "buttons";
    td.append(box);
    if (modes.has(s.call_id)) {
      const mode = document.createElement("span");
      mode.className = "mode";
      mode.textContent = MODES[modes.get(s.call_id)];
      box.append(mode);
    }
    for (const [action, label] of SUPERVISE) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      button.addEventListener("click", () => callControls.send(
        "/wallboard/api/supervise/" + action, { extension: s.extension, call_id: s.call_id }));
      box.append(button);
    }
    return td;
  }
  function onControlResult(data) {
    if (!data.ok) { return; }
    if (data.action in MODES) { modes.set(data.call_id, data.action); }
    if (data.action === "stop_listening") { modes.delete(data.call_id); }
    refresh();
  }

  async function refresh() {
    const response = await fetch("/wallboard/api/state", { credentials: "same-origin" });
    if (!response.ok) { return; }
    const data = await response.json();
    const seats = $("seats").querySelector("tbody");
    seats.replaceChildren(...data.seats.map((s) => {
      const tr = row([
        s.extension, s.agent,
        { state: s.state, text: s.label + (s.reason ? "（" + s.reason + "）" : "") },
        duration(s.in_state_s), s.registered ? "已注册" : "未注册",
      ], s.state);
      tr.append(superviseCell(s));
      return tr;
    }));
    $("supervise-hint").hidden = Boolean(data.own_extension);
    showFigures(data);
    showSeatChart(data.seats);
    const queues = $("queues").querySelector("tbody");
    const rows = data.queues.map((q) => row([q.label, q.waiting, duration(q.longest_wait_s)]));
    if (!rows.length) { rows.push(row(["暂无排队", "", ""])); }
    queues.replaceChildren(...rows);
  }

  makeCharts();
  const socket = io({ auth: { csrf }, transports: ["websocket", "polling"] });
  const showCallbacks = () => callbackList.show($("callbacks"));
  socket.on("connect", () => {
    $("connection").textContent = "已连接";
    refresh();
    refreshCharts();
    showCallbacks();
  });
  socket.on("disconnect", () => { $("connection").textContent = "连接中断，正在重连…"; });
  socket.on("seat.changed", () => { refresh(); soonCharts(); });
  socket.on("queue.changed", refresh);
  callControls.listen(socket, onControlResult);
  // A call arriving, queued, put through or ended changes the queues and the day's figures.
  for (const type of ["call.arrived", "call.queued", "call.answered", "call.ended"]) {
    socket.on(type, () => { refresh(); soonCharts(); });
  }
  setInterval(refresh, 5000);
  setInterval(refreshCharts, 30000);
  setInterval(showCallbacks, 30000);
  refresh();
  refreshCharts();
})();
