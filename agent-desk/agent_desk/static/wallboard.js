// The supervisor wallboard: redraws on every seat or queue event, and every few seconds.
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

  async function refresh() {
    const response = await fetch("/wallboard/api/state", { credentials: "same-origin" });
    if (!response.ok) { return; }
    const data = await response.json();
    const seats = $("seats").querySelector("tbody");
    seats.replaceChildren(...data.seats.map((s) => row([
      s.extension, s.agent,
      { state: s.state, text: s.label + (s.reason ? "（" + s.reason + "）" : "") },
      duration(s.in_state_s), s.registered ? "已注册" : "未注册",
    ], s.state)));
    showFigures(data);
    const queues = $("queues").querySelector("tbody");
    const rows = data.queues.map((q) => row([q.label, q.waiting, duration(q.longest_wait_s)]));
    if (!rows.length) { rows.push(row(["暂无排队", "", ""])); }
    queues.replaceChildren(...rows);
  }

  const socket = io({ auth: { csrf }, transports: ["websocket", "polling"] });
  socket.on("connect", () => { $("connection").textContent = "已连接"; refresh(); });
  socket.on("disconnect", () => { $("connection").textContent = "连接中断，正在重连…"; });
  socket.on("seat.changed", refresh);
  socket.on("queue.changed", refresh);
  setInterval(refresh, 5000);
  refresh();
})();
