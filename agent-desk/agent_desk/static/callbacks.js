// The list of missed callers to be called back (漏接回拨), on the desk and the wallboard. The
// softswitch dials them; a supervisor may cancel an open one, with a reason (the server audits it).
// Needs controls.js (its toasts and JSON requests).
window.callbackList = (function () {
  "use strict";

  async function cancel(task, table) {
    const reason = window.prompt("取消回拨 " + task.caller + " 的原因：", "");
    if (reason === null) { return; }
    const result = await callControls.request("POST", "/desk/api/callbacks/" + task.id + "/cancel", { reason });
    callControls.toast(result.ok ? "已取消回拨 " + task.caller : (result.data.error || "取消失败"), !result.ok);
    show(table);
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = String(text);
    return td;
  }

  async function show(table) {
    const result = await callControls.request("GET", "/desk/api/callbacks");
    if (!result.ok) { return; }
    const canCancel = Boolean(result.data.can_cancel);
    const rows = result.data.tasks.map((t) => {
      const tr = document.createElement("tr");
      tr.className = t.overdue ? "warn" : "";
      tr.append(...[t.caller, t.reason, t.status, t.missed, t.attempts, t.due].map(cell));
      if (canCancel) {
        const td = cell("");
        if (t.cancellable) {
          const button = document.createElement("button");
          button.type = "button";
          button.textContent = "取消回拨";
          button.addEventListener("click", () => cancel(t, table));
          td.append(button);
        }
        tr.append(td);
      }
      return tr;
    });
    if (!rows.length) {
      const td = cell("暂无待回拨");
      td.colSpan = canCancel ? 7 : 6;
      td.className = "hint";
      const tr = document.createElement("tr");
      tr.append(td);
      rows.push(tr);
    }
    table.querySelector("tbody").replaceChildren(...rows);
  }

  return { show };
})();
