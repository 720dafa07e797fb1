// Call controls, shared by the desk and the wallboard: sending one, and showing what the
// softswitch answered (`call.control` events: id, call_id, action, ok, error) as a toast; and
// the pages' JSON request helper (`request`).
window.callControls = (function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const DONE = {
    hold: "通话已保持", resume: "已恢复通话", hang_up: "通话已挂断", survey: "已转满意度评价",
    transfer_queue: "已转入队列", transfer_seat: "已转给该座席，正在振铃",
    consult: "同事已接听，可以交代情况", complete_transfer: "转接完成", cancel_consult: "已取消咨询",
    transfer_number: "已接通对方，三方通话中", emergency: "已接通紧急电话，三方通话中",
    drop_agent: "已退出三方通话",
    listen: "正在监听", whisper: "正在耳语（仅话务员可听到您）", barge: "已强插（双方都可听到您）",
    stop_listening: "已停止监听",
  };
  const LABELS = {
    hold: "保持", resume: "恢复通话", hang_up: "挂断", survey: "转满意度评价", transfer_queue: "转队列",
    transfer_seat: "转座席", consult: "咨询转接", complete_transfer: "完成转接", cancel_consult: "取消咨询",
    transfer_number: "转接号码", emergency: "紧急转接", drop_agent: "退出三方通话",
    listen: "监听", whisper: "耳语", barge: "强插", stop_listening: "停止监听",
  };
  // The softswitch's reasons (ivr/call_control.py); an unknown one is shown by its code.
  const ERRORS = {
    no_call: "通话已结束",
    not_your_call: "该通话已不在您的座席上",
    not_allowed: "当前状态不允许该操作（如已在保持、已有三方或已有班长介入）",
    seat_busy: "该座席当前不空闲",
    no_room: "软交换线路已满，暂时不能加入第三方",
    bad_target: "号码无效或未开通",
    failed: "对方无法接通（忙、无应答或线路不可用）",
  };
  // Where a reason means something else for one action: a seat the ACD has never seen signed in.
  const ACTION_ERRORS = {
    transfer_seat: { bad_target: "该座席未签入" },
    consult: { no_room: "软交换线路已满，暂时不能呼叫同事", not_allowed: "当前状态不允许咨询（如已有三方通话）" },
  };
  // Outcomes that are news rather than a failure of the button: said as a whole sentence.
  const OUTCOMES = { consult: { failed: "同事未接听，已恢复与市民通话" } };
  const sent = new Set();
  const early = new Map();  // results that came in before the POST that sent them answered
  let onDone = null;

  function toast(text, error) {
    const box = document.getElementById("toasts");
    const div = document.createElement("div");
    div.className = "toast" + (error ? " error" : "");
    div.textContent = text;
    box.append(div);
    setTimeout(() => div.remove(), error ? 10000 : 5000);
  }

  function resultText(data) {
    if (data.ok) { return DONE[data.action] || "操作已完成"; }
    const code = String(data.error || "");
    if ((OUTCOMES[data.action] || {})[code]) { return OUTCOMES[data.action][code]; }
    const reason = (ACTION_ERRORS[data.action] || {})[code] || ERRORS[code]
      || "软交换未能完成（" + (code || "未知原因") + "）";
    return (LABELS[data.action] || "操作") + "失败：" + reason;
  }

  function show(data) {
    sent.delete(data.id);
    toast(resultText(data), !data.ok);
    if (onDone) { onDone(data); }
  }

  // A JSON request to the web with the page's CSRF token: { ok, status, data }. A server that
  // cannot be reached (restarting, network) answers { ok: false, status: 0, data: { error: offline } }.
  async function request(method, url, body, offline = "无法连接服务器，请稍后再试") {
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: body ? JSON.stringify(body) : undefined,
        credentials: "same-origin",
      });
    } catch (e) {
      return { ok: false, status: 0, data: { error: offline } };
    }
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    return { ok: response.ok, status: response.status, data };
  }

  // POST a control. Only this page's own commands toast here: supervisors are sent every result.
  // `sentText`: what to say once the softswitch has the command (before any answer to it).
  async function send(url, body, sentText) {
    let data = {};
    let ok = false;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      ok = response.ok;
      data = await response.json();
    } catch (e) { data = {}; }
    if (!ok) { toast(data.error || "操作失败，请稍后再试", true); return false; }
    sent.add(data.id);
    if (sentText) { toast(sentText, false); }
    if (early.has(data.id)) { show(early.get(data.id)); early.delete(data.id); }
    return true;
  }

  // Follow the results on the page's socket; `then(data)` for what else the page shows.
  function listen(socket, then) {
    onDone = then;
    socket.on("call.control", (event) => {
      const data = event.data;
      if (sent.has(data.id)) { show(data); return; }
      early.set(data.id, data);
      if (early.size > 50) { early.delete(early.keys().next().value); }
    });
  }

  return { toast, send, listen, request };
})();
