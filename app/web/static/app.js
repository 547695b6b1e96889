// perpdesk dashboard glue: live indicator, pushed fragments, equity chart, the confirm,
// replace and order-details dialogs. No inline scripts or handlers anywhere (the pages
// run under a strict Content-Security-Policy): everything is wired here, by delegation.
(function () {
  "use strict";
  var live = document.getElementById("live");
  function setLive(on) {
    if (!live) return;
    live.classList.toggle("on", on);
    live.classList.toggle("reconnecting", !on);
    live.textContent = on ? "live" : "reconnecting…";
  }
  document.body.addEventListener("htmx:wsOpen", function () { setLive(true); });
  document.body.addEventListener("htmx:wsClose", function () { setLive(false); });
  document.body.addEventListener("htmx:wsError", function () { setLive(false); });

  // Pushed fragments. The ws extension (htmx-ext-ws 2.0.4) swaps each top-level element
  // of a message out of band, but not the content of <template>s; the server wraps each
  // table-row operation in one (a bare <tr> after a <div>, or a <tbody> after a <tr>, is
  // dropped by the HTML parser; see _in_template in app/web/live.py). This extension does
  // the swaps itself, templates included, in the message's order, and hands the ws
  // extension nothing left to do (it still fires htmx:wsAfterMessage).
  var internal = null;
  htmx.defineExtension("live-rows", {
    init: function (api) { internal = api; },
    transformResponse: function (text, xhr, elt) {
      if (xhr || !internal) return text;  // an ordinary htmx request: untouched
      var focusedId = document.activeElement && document.activeElement.id;
      var fragment = internal.makeFragment(text);
      var settle = internal.makeSettleInfo(elt);
      Array.prototype.slice.call(fragment.children).forEach(function (child) {
        var parts = child.tagName === "TEMPLATE"
          ? Array.prototype.slice.call(child.content.children) : [child];
        parts.forEach(function (part) {
          internal.oobSwap(internal.getAttributeValue(part, "hx-swap-oob") || "true", part, settle);
        });
      });
      internal.settleImmediately(settle.tasks);
      // A re-rendered table or banner replaces the button a keyboard user was on: give
      // focus to its successor (same id), as htmx does for its own swaps.
      if (focusedId && !document.activeElement.id) {
        var again = document.getElementById(focusedId);
        if (again) again.focus({ preventScroll: true });
      }
      return "";
    }
  });

  // Equity curve (TradingView lightweight-charts), fed by the pushed #equity-data JSON.
  var chart = null, series = null;
  function drawEquity() {
    var holder = document.getElementById("equity-chart");
    var data = document.getElementById("equity-data");
    if (!holder || !data || !window.LightweightCharts) return;
    if (!chart) {
      chart = LightweightCharts.createChart(holder, {
        autoSize: true,
        // attributionLogo injects an inline <style> the CSP refuses; the page links instead.
        layout: { background: { color: "transparent" }, textColor: "#8b98a5", attributionLogo: false },
        grid: { vertLines: { color: "#1e2732" }, horzLines: { color: "#1e2732" } },
        timeScale: { timeVisible: true, secondsVisible: true }
      });
      series = chart.addSeries(LightweightCharts.LineSeries, { color: "#4c8dff", lineWidth: 2 });
    }
    try {
      var points = JSON.parse(data.textContent || "[]").map(function (p) {
        return { time: p.time, value: Number(p.value) };  // chart coordinates only
      });
      series.setData(points);
    } catch (e) { /* a partial frame; the next push redraws */ }
  }
  drawEquity();
  document.body.addEventListener("htmx:oobAfterSwap", function (ev) {
    if (ev.detail && ev.detail.target && ev.detail.target.id === "equity-data") drawEquity();
  });

  // ---- dialogs -------------------------------------------------------------------------
  // Modal <dialog>s: the browser moves focus in, keeps Tab inside and closes on Escape.
  // On close, focus goes back to the button that opened the dialog, or (when a push has
  // re-rendered it meanwhile) to its successor with the same id.
  var openers = {};
  function openDialog(dialog, opener) {
    openers[dialog.id] = opener ? (opener.id || null) : null;
    if (opener && !opener.id) openers[dialog.id] = opener;
    dialog.showModal();
  }
  function restoreFocus(dialog) {
    var opener = openers[dialog.id];
    var target = typeof opener === "string" ? document.getElementById(opener) : opener;
    if (target && target.isConnected) target.focus();
  }
  ["confirm", "replace-dialog", "drawer"].forEach(function (id) {
    var dialog = document.getElementById(id);
    if (dialog) dialog.addEventListener("close", function () { restoreFocus(dialog); });
  });
  function closeOnClick(buttonId, dialogId) {
    var button = document.getElementById(buttonId), dialog = document.getElementById(dialogId);
    if (button && dialog) button.addEventListener("click", function () { dialog.close(); });
  }
  closeOnClick("confirm-cancel", "confirm");
  closeOnClick("replace-cancel", "replace-dialog");
  closeOnClick("drawer-close", "drawer");

  function setText(id, text) {
    var el = document.getElementById(id);
    if (el) el.textContent = text;
  }
  function setValue(id, value) {
    var el = document.getElementById(id);
    if (el) el.value = value;
  }
  function retarget(form, url, target, swap) {
    form.setAttribute("hx-post", url);
    form.setAttribute("hx-target", target);
    form.setAttribute("hx-swap", swap);
    htmx.process(form);
  }

  var ACTION_TEXT = {
    "reduce-only": "Only orders that shrink a position will be accepted; resting orders that could add exposure are canceled.",
    "disable-trading": "No new orders will be accepted; cancels still work.",
    "enable-trading": "Back to normal trading on this scope.",
    "close-all": "Cancels every open order and flattens every position at market, then leaves the scope reduce-only.",
    "enable-narrower": "Each of these scopes is set back to active, one audited action each."
  };

  // Kill switches (data-action) and closing a position (data-close-position) ask for
  // confirmation; a kill switch also for a reason (the audit log's), a close optionally.
  var confirmDialog = document.getElementById("confirm");
  document.body.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-action], button[data-close-position]");
    if (!button || !confirmDialog) return;
    var form = document.getElementById("confirm-form");
    var reason = document.getElementById("confirm-reason");
    var label = button.textContent.trim();
    // The confirm button wears the color of what it does (red for stopping or closing).
    var go = document.getElementById("confirm-go");
    go.className = /enable/.test(button.dataset.action || "") ? "ok"
      : button.dataset.action === "reduce-only" ? "warn" : "danger";
    var narrower = [];
    try { narrower = JSON.parse(button.dataset.narrower || "[]"); } catch (e) { narrower = []; }
    var narrowerBox = document.getElementById("confirm-narrower");
    var cascade = document.getElementById("confirm-cascade");
    cascade.checked = false;
    narrowerBox.hidden = true;
    setValue("confirm-client", button.dataset.client || "");
    setValue("confirm-venue", button.dataset.venue || "");
    setValue("confirm-symbol", button.dataset.symbol || "");
    reason.value = button.dataset.reasonDefault || "";

    if (button.hasAttribute("data-close-position")) {
      retarget(form, "/ui/positions/close", "#toasts", "afterbegin");
      setText("confirm-title", "Close this position?");
      setText("confirm-scope", button.dataset.label + ": a reduce-only market order for the whole position.");
      setText("confirm-reason-label", "Reason (optional, for the audit log)");
      reason.required = false;
      setText("confirm-go", "Close position");
    } else {
      var action = button.dataset.action;
      // The panel shows a control's result in place; elsewhere (the banner's brake) a toast.
      var panel = document.getElementById("control-result");
      if (panel) retarget(form, "/ui/controls/" + action, "#control-result", "innerHTML");
      else retarget(form, "/ui/controls/" + action, "#toasts", "afterbegin");
      setText("confirm-title", (action === "enable-narrower" ? "Enable the narrower scopes" : label) + "?");
      setText("confirm-scope", "Scope: " + button.dataset.label + ". " + (ACTION_TEXT[action] || ""));
      setText("confirm-reason-label", "Reason (for the audit log)");
      reason.required = true;
      setText("confirm-go", action === "enable-narrower" ? "Enable them"
        : "Confirm " + label.toLowerCase());
      if (narrower.length) {
        var list = document.getElementById("confirm-narrower-list");
        list.textContent = "";
        narrower.forEach(function (s) {
          var item = document.createElement("li");
          item.textContent = s.label + ": " + s.state.replace("_", "-");
          list.appendChild(item);
        });
        setText("confirm-narrower-intro", action === "enable-narrower"
          ? "These scopes are restricted by their own setting:"
          : "These narrower scopes stay restricted by their own setting after this:");
        // The cascade choice belongs to "Enable"; "enable-narrower" is that choice.
        document.getElementById("confirm-cascade-label").hidden = action !== "enable-trading";
        narrowerBox.hidden = false;
      }
    }
    openDialog(confirmDialog, button);
  });
  if (confirmDialog) {
    document.getElementById("confirm-form").addEventListener("htmx:afterRequest", function () {
      confirmDialog.close();
    });
  }

  // Replace: a dialog for the new price and qty, then post.
  var replaceDialog = document.getElementById("replace-dialog");
  document.body.addEventListener("click", function (ev) {
    var button = ev.target.closest("button.replace");
    if (!button || !replaceDialog) return;
    retarget(document.getElementById("replace-form"),
      "/ui/orders/" + button.dataset.orderId + "/replace", "#toasts", "afterbegin");
    setText("replace-title", "Replace order " + button.dataset.orderId);
    setText("replace-order", button.dataset.label + ". Cancel/replace keeps the side, type and flags.");
    setValue("replace-price", button.dataset.price);
    setValue("replace-qty", button.dataset.qty);
    openDialog(replaceDialog, button);
    document.getElementById("replace-price").select();
  });
  if (replaceDialog) {
    document.getElementById("replace-form").addEventListener("htmx:afterRequest", function () {
      replaceDialog.close();
    });
  }

  // Order details: the id button loads them into the drawer, which then opens.
  var drawer = document.getElementById("drawer");
  var drawerOpener = null;
  document.body.addEventListener("click", function (ev) {
    var button = ev.target.closest("button.order-details");
    if (button) drawerOpener = button;
  });
  document.body.addEventListener("htmx:afterSwap", function (ev) {
    if (drawer && ev.detail.target && ev.detail.target.id === "drawer-body" && !drawer.open) {
      openDialog(drawer, drawerOpener);
    }
  });

  // Toasts fade after a while.
  document.body.addEventListener("htmx:afterSwap", function (ev) {
    if (ev.detail.target && ev.detail.target.id === "toasts") {
      var toast = ev.detail.target.firstElementChild;
      if (toast) setTimeout(function () { toast.remove(); }, 8000);
    }
  });
  // Errors from actions (4xx) still carry a fragment worth showing.
  document.body.addEventListener("htmx:beforeSwap", function (ev) {
    if (ev.detail.xhr.status >= 400 && ev.detail.xhr.status < 500) {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
    }
  });

  // The ticket: after an order is placed, the cursor goes back to the quantity.
  document.body.addEventListener("htmx:afterSettle", function (ev) {
    var xhr = ev.detail.xhr;
    var ticket = document.getElementById("ticket");
    if (xhr && /\/ui\/orders$/.test(xhr.responseURL) && ticket && ticket.querySelector(".toast-ok")) {
      var qty = ticket.querySelector("input[name=qty]");
      if (qty) qty.focus();
    }
  });
})();
