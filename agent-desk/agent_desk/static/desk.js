// The agent desk: seat buttons, call controls, live state over Socket.IO, screen pop, ticket
// form, callback tasks.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);
  let since = null;
  const OFFLINE = "无法连接服务器，请稍后重试（已填写的内容仍保留）";
  let seatCall = "";  // the call the seat holds (offered to wrap-up), "" when none

  // The page keeps what was typed when the server cannot be reached: the message says so.
  const call = (method, url, body) => callControls.request(method, url, body, OFFLINE);

  function showState(state) {
    const el = $("seat-state");
    el.textContent = state.label;
    el.dataset.state = state.state;
    $("seat-reason").textContent = state.state === "not_ready" && state.reason ? "（" + state.reason + "）" : "";
    $("seat-phone").textContent = state.registered ? "话机已注册" : "话机未注册：请检查话机或软电话";
    since = state.since;
    seatCall = state.call_id || "";
    showControls(state.state);
    showCallControls(state);
    if (state.call_id) {
      $("ticket-call-id").value = state.call_id;
      // Read again at each step of the call (offered, talking, wrap-up): what the caller said
      // before this agent was sent the call's segments is in the database.
      if (state.call_id !== transcript.call || state.state !== transcript.state) {
        transcript.state = state.state;
        loadTranscript(state.call_id);
      }
    }
  }

  // The live transcript (智能填单): both speakers, restored from the server on reload/reconnect;
  // the caller's words pre-fill the ticket's content until the agent types in it.
  const transcript = { call: null, state: null, lines: new Map(), pending: new Map(), touched: false };
  const SPEAKERS = { caller: "市民", agent: "话务员" };

  function showTranscript() {
    const list = $("pop-transcript");
    const lines = [...transcript.lines.values()].sort((a, b) => a.start_s - b.start_s);
    list.replaceChildren();
    if (!lines.length && !transcript.pending.size) { list.append(hint("暂无")); }
    // Utterances still being spoken (partials) come last, greyed, until their segment arrives.
    for (const s of [...lines, ...transcript.pending.values()]) {
      const li = document.createElement("li");
      li.className = s.leg + (s.start_s === undefined ? " pending" : "");
      const who = document.createElement("span");
      who.className = "speaker";
      who.textContent = (SPEAKERS[s.leg] || s.leg) + "：";
      li.append(who, document.createTextNode(s.text));
      list.append(li);
    }
    list.scrollTop = list.scrollHeight;
    const content = $("ticket-form").elements.content;
    if (!transcript.touched) {
      content.value = lines.filter((s) => s.leg === "caller").map((s) => s.text).join(" ");
    }
  }

  async function loadTranscript(callId) {
    if (callId !== transcript.call) {
      transcript.call = callId;
      transcript.lines = new Map();
      transcript.pending = new Map();
    }
    const result = await call("GET", "/desk/api/transcript?call_id=" + encodeURIComponent(callId));
    if (!result.ok || callId !== transcript.call) { return; }
    for (const s of result.data.segments) { transcript.lines.set(s.leg + ":" + s.seq, s); }
    showTranscript();
  }

  function onTranscript(event) {
    const s = event.data;
    // The seat's own call only (known from its state): supervisors are sent every call's.
    if (s.call_id !== transcript.call) { return; }
    const previous = [...transcript.lines.values()].filter((l) => l.leg === s.leg).length;
    transcript.lines.set(s.leg + ":" + s.seq, s);
    const pending = transcript.pending.get(s.leg);
    if (pending && pending.seq <= s.seq) { transcript.pending.delete(s.leg); }
    // A segment sent before this desk was told about the call: read the rest from the server.
    if (s.seq > previous + 1) { loadTranscript(s.call_id); } else { showTranscript(); }
  }
  function onPartial(event) {
    const s = event.data;
    if (s.call_id !== transcript.call || transcript.lines.has(s.leg + ":" + s.seq)) { return; }
    transcript.pending.set(s.leg, { leg: s.leg, seq: s.seq, text: s.text });
    showTranscript();
  }
  $("ticket-form").elements.content.addEventListener("input", () => { transcript.touched = true; });

  // Several reads may be under way (a seat event and a control's answer at once): an answer older
  // than the one shown last is dropped, so the page never steps back to a state that is over.
  let asked = 0;
  let shown = 0;
  async function refresh() {
    const mine = ++asked;
    const result = await call("GET", "/desk/api/state");
    if (!result.ok || mine < shown) { return; }
    shown = mine;
    showState(result.data);
    popCall(result.data.call);
  }

  // Which seat buttons the state allows (acd.seat_states): on a call only the softswitch moves it.
  const ALLOWED = {
    logged_out: ["login"], not_ready: ["ready", "not_ready", "logout"], ready: ["not_ready", "logout"],
    offered: [], talking: [], held: [], wrap_up: ["ready", "not_ready", "logout"],
  };
  function showControls(state) {
    document.querySelectorAll("[data-event]").forEach((button) => {
      button.disabled = !(ALLOWED[state] || []).includes(button.dataset.event);
    });
  }

  // The seat's own call comes with its state: the desk pops when the softswitch offers the seat
  // a call (seat.changed), and again after a reload or reconnect, whatever events it missed.
  let popped = "";
  let lastPop = null;
  function popCall(data) {
    if (!data || data.call_id + "|" + data.caller === popped) { return; }
    popped = data.call_id + "|" + data.caller;
    lastPop = data;
    screenPop(data);
  }

  // Call controls, while the seat is talking or holding: on the seat's own call only (the call id
  // goes with the command, so a page a step behind is refused rather than acting on the next call).
  // "Leave the 3-way call" opens once this desk saw a number joined to this call.
  const ON_HOLD = ["resume", "hang_up"];
  // An attended transfer (咨询转接) comes with the state, read from the seats (so a reload shows it
  // again): consulting, the agent may complete it (once the colleague answered), cancel it or hang
  // up; consulted, the colleague's desk has no controls for a call that is not its own yet.
  const WHILE_CONSULTING = ["complete_transfer", "cancel_consult", "hang_up"];
  const CONSULT_ONLY = ["complete_transfer", "cancel_consult"];
  let onCall = "";
  let consult = null;
  let consultEnding = false;  // this desk asked to complete or cancel: no "the colleague hung up"
  // The colleague answered this desk's consultation: if it ends without this desk completing or
  // cancelling it, the colleague hung up. Kept across state reads, because one may come between
  // the colleague's hang-up and this seat's return to talking (held, no consultation any more).
  let consultAnswered = false;
  let consultTimer = null;
  function threeWay(callId) { return sessionStorage.getItem("three-way") === callId; }
  function controlOff(action, state) {
    if (consult) {
      return consult.role === "consulted" || !WHILE_CONSULTING.includes(action)
        || (action === "complete_transfer" && !consult.answered);
    }
    if (CONSULT_ONLY.includes(action)) { return true; }
    if (state.state === "held") { return !ON_HOLD.includes(action); }
    return action === "resume" || (action === "drop_agent" && !threeWay(onCall));
  }
  function showCallControls(state) {
    const talking = state.state === "talking" || state.state === "held";
    onCall = talking ? state.call_id : "";
    consult = talking ? state.consult || null : null;
    $("call-controls").hidden = !talking;
    document.querySelectorAll("[data-control]").forEach((button) => {
      button.disabled = !talking || controlOff(button.dataset.control, state);
    });
    showConsult();
    if (consult && consult.role === "consulting" && consult.answered) { consultAnswered = true; }
    if (!consult && consultAnswered && state.state !== "held") {
      if (!consultEnding && state.state === "talking") {
        callControls.toast("同事已挂断，已恢复与市民通话", false);
      }
      consultAnswered = false;
    }
    if (!consult && state.state !== "held") { consultEnding = false; }
    // Handing the call over moves no seat of the colleague's (it stays talking): its desk reads
    // the state again until the call is its own.
    clearTimeout(consultTimer);
    if (consult && consult.role === "consulted") { consultTimer = setTimeout(refresh, 2000); }
  }
  function showConsult() {
    $("consult").hidden = !consult;
    if (!consult) { return; }
    const who = consult.extension + (consult.name ? " " + consult.name : "");
    $("consult-buttons").hidden = consult.role !== "consulting";
    $("consult-status").textContent = consult.role === "consulted"
      ? who + " 正在向您咨询转接，市民保持等待中；对方完成转接后，通话转给您"
      : consult.answered ? "正在与 " + who + " 通话，市民保持等待中；交代完毕请点“完成转接”"
        : "正在呼叫同事 " + who + "…（市民保持等待中）";
  }
  const SENT = { consult: "正在呼叫同事…" };
  document.querySelectorAll("[data-control]").forEach((button) => {
    button.addEventListener("click", () => {
      const action = button.dataset.control;
      const from = button.dataset.targetFrom;
      const target = from ? $(from).value : (button.dataset.target || "");
      if (CONSULT_ONLY.includes(action)) { consultEnding = true; }
      callControls.send("/desk/api/call/" + action, { call_id: onCall, target }, SENT[action]);
    });
  });
  function onControlResult(data) {
    if (data.ok && (data.action === "transfer_number" || data.action === "emergency")) {
      sessionStorage.setItem("three-way", data.call_id);
      refresh();
    }
    // The colleague answering (or not) moves the colleague's seat, not this one: read it again.
    if (data.action === "consult" || CONSULT_ONLY.includes(data.action)) { refresh(); }
    if (!data.ok && CONSULT_ONLY.includes(data.action)) { consultEnding = false; }
  }

  const showCallbacks = () => callbackList.show($("callbacks"));

  document.querySelectorAll("[data-event]").forEach((button) => {
    button.addEventListener("click", async () => {
      const body = { event: button.dataset.event };
      if (body.event === "not_ready") { body.reason = $("not-ready-reason").value; }
      const result = await call("POST", "/desk/api/seat", body);
      $("seat-error").textContent = result.ok ? "" : (result.data.error || "操作失败");
      // 200 answers the seat's state itself; 409 carries it under "state" beside the error.
      const state = result.ok ? result.data : result.data.state;
      if (state && state.label) { showState(state); }
    });
  });

  // Shortcuts: Alt + a button's accesskey (named in its title). Handled here so that every browser
  // agrees (Firefox wants Alt+Shift by itself); preventDefault keeps Chromium's own from firing too.
  // Only a button that is shown and enabled: no hang-up while there is no call.
  document.addEventListener("keydown", (event) => {
    if (!event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    const button = [...document.querySelectorAll("[accesskey]")].find((el) =>
      event.code === "Key" + el.accessKey.toUpperCase() && !el.disabled && el.offsetParent !== null);
    if (!button) { return; }
    event.preventDefault();
    button.click();
  });

  setInterval(() => {
    if (!since) { $("seat-timer").textContent = ""; return; }
    const s = Math.max(0, Math.floor(Date.now() / 1000 - since));
    $("seat-timer").textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }, 1000);

  function hint(text) {
    const li = document.createElement("li");
    li.className = "hint";
    li.textContent = text;
    return li;
  }

  async function showHistory(phone) {
    const list = $("pop-history");
    list.replaceChildren();
    const result = await call("GET", "/desk/api/history?phone=" + encodeURIComponent(phone));
    const tickets = result.ok ? result.data.tickets : [];
    if (!tickets.length) { list.append(hint("暂无")); }
    for (const t of tickets) {
      const li = document.createElement("li");
      li.className = t.open ? "open" : "";
      li.textContent = t.number + " " + t.status + " " + t.title;
      list.append(li);
    }
  }

  function screenPop(data) {
    $("pop-caller").textContent = data.caller || "未知号码";
    $("pop-path").textContent = (data.ivr_steps || []).join(" → ") || "—";
    $("pop-wait").textContent = data.wait_s != null ? Math.round(data.wait_s) + " 秒" : "—";
    $("ticket-phone").value = data.caller || "";
    $("ticket-call-id").value = data.call_id || "";
    if (data.caller) { showHistory(data.caller); suggest(); }
  }

  // The dispatch catalog's proposal and possible duplicates, as the agent types.
  let suggestTimer = null;
  async function suggest() {
    const form = $("ticket-form");
    const params = new URLSearchParams({
      category: form.elements.category_code.value,
      district: form.elements.district.value,
      text: form.elements.content.value,
      phone: form.elements.caller_phone.value,
      address: form.elements.address.value,
    });
    const result = await call("GET", "/desk/api/suggest?" + params.toString());
    if (!result.ok) { return; }
    const box = $("suggestions");
    box.replaceChildren();
    for (const s of result.data.suggestions) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "派单建议：" + s.department + (s.assists.length ? "（协办：" + s.assists.join("、") + "）" : "");
      button.addEventListener("click", () => {
        form.elements.department_id.value = String(s.department_id);
        form.querySelector('input[name="outcome"][value="dispatch"]').checked = true;
      });
      const reason = document.createElement("span");
      reason.className = "reason";
      reason.textContent = s.reasons.join("；");
      box.append(button, reason);
    }
    const dups = $("duplicates");
    dups.replaceChildren();
    for (const d of result.data.duplicates) {
      const p = document.createElement("p");
      p.className = d.open ? "warn" : "hint";
      p.textContent = "疑似重复：" + d.number + " " + d.status + " " + d.title + "（" + d.reasons.join("；") + "）";
      dups.append(p);
    }
  }
  $("ticket-form").addEventListener("input", () => {
    clearTimeout(suggestTimer);
    suggestTimer = setTimeout(suggest, 300);
  });

  // Knowledge base: search as the agent types; one click quotes an article as the answer.
  let knowledgeTimer = null;
  $("knowledge-query").addEventListener("input", () => {
    clearTimeout(knowledgeTimer);
    knowledgeTimer = setTimeout(async () => {
      const q = $("knowledge-query").value.trim();
      const list = $("knowledge-results");
      list.replaceChildren();
      if (!q) { return; }
      const result = await call("GET", "/knowledge/search?q=" + encodeURIComponent(q));
      const articles = result.ok ? result.data.articles : [];
      if (!articles.length) {
        const li = document.createElement("li");
        li.className = "hint";
        li.textContent = "未找到相关知识";
        list.append(li);
      }
      for (const a of articles) {
        const li = document.createElement("li");
        const title = document.createElement("strong");
        title.textContent = a.title;
        const body = document.createElement("p");
        body.textContent = a.body;
        const use = document.createElement("button");
        use.type = "button";
        use.textContent = "引用答复";
        use.addEventListener("click", () => {
          const form = $("ticket-form");
          form.elements.answer.value = a.body;
          form.querySelector('input[name="outcome"][value="resolve"]').checked = true;
        });
        li.append(title, body, use);
        list.append(li);
      }
    }, 250);
  });

  $("ticket-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const body = Object.fromEntries(new FormData(form).entries());
    body.confidential = form.elements.confidential.checked;
    document.querySelectorAll("[data-error-for]").forEach((el) => { el.textContent = ""; });
    const result = await call("POST", "/desk/api/tickets", body);
    if (result.ok) {
      $("ticket-result").textContent = "工单 " + result.data.number + " 已提交（" + result.data.status + "）";
      form.reset();
      transcript.touched = false;  // the next call's words may fill the form again
      // A caller with a second request: the next ticket is about the same caller while the seat
      // still holds the call.
      if (lastPop && lastPop.call_id === seatCall) { $("ticket-phone").value = lastPop.caller || ""; }
    } else {
      const errors = result.data.errors || {};
      for (const [field, message] of Object.entries(errors)) {
        const el = document.querySelector('[data-error-for="' + field + '"]');
        if (el) { el.textContent = message; }
      }
      $("ticket-result").textContent = result.data.error || "请检查表单";
    }
  });

  const socket = io({ auth: { csrf }, transports: ["websocket", "polling"] });
  socket.on("connect", () => {
    $("connection").textContent = "已连接";
    transcript.call = null;  // segments sent while disconnected are read again with the state
    refresh();
    showCallbacks();
  });
  socket.on("disconnect", () => { $("connection").textContent = "连接中断，正在重连…"; });
  socket.on("seat.changed", refresh);
  callControls.listen(socket, onControlResult);
  socket.on("transcript", onTranscript);
  socket.on("transcript.partial", onPartial);
  setInterval(showCallbacks, 30000);
  refresh();
  showCallbacks();
})();
