// Segment rule builder: draws the rule kept in the form's JSON field as nested groups of
// conditions, writes every change back to that field, and asks the server for the live
// count. The server validates and compiles the rule; this only builds it. No framework.
(function () {
  "use strict";
  var root = document.getElementById("segment-builder");
  var configNode = document.getElementById("segment-config");
  if (!root || !configNode) { return; }
  var config = JSON.parse(configNode.textContent);
  var field = document.getElementById("id_rules");
  var errorsNode = document.getElementById("segment-errors");
  var countUrl = root.getAttribute("data-count-url");
  var NO_VALUE = ["is_set", "not_set", "is_true", "is_false"];
  var rule;
  try {
    rule = field.value.trim() ? JSON.parse(field.value) : { op: "and", rules: [] };
    if (!rule || typeof rule !== "object" || !Array.isArray(rule.rules)) { throw new Error("shape"); }
    document.getElementById("segment-json").hidden = true;
  } catch (e) {
    // Leave the JSON visible so what was typed can be fixed by hand.
    rule = { op: "and", rules: [] };
    root.hidden = true;
    return;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; } else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }
  function select(options, value, label) {
    var node = el("select", { "aria-label": label || "" });
    options.forEach(function (opt) {
      if (opt.group) {
        var group = el("optgroup", { label: opt.group });
        opt.options.forEach(function (o) { group.appendChild(el("option", { value: o.value, text: o.label })); });
        node.appendChild(group);
      } else {
        node.appendChild(el("option", { value: opt.value, text: opt.label }));
      }
    });
    if (value !== undefined && value !== null) { node.value = String(value); }
    return node;
  }
  function customField(name) {
    for (var i = 0; i < config.custom.length; i++) { if (config.custom[i].value === name) { return config.custom[i]; } }
    return null;
  }
  function kindOf(name) {
    if (["email", "domain", "first_name", "last_name"].indexOf(name) >= 0) { return { kind: "text", type: "text" }; }
    var custom = customField(name);
    if (custom) { return { kind: "custom", type: custom.type, options: custom.options }; }
    if (name === "list") { return { kind: "list" }; }
    if (name === "subscribed") { return { kind: "subscribed" }; }
    return { kind: "engagement" };
  }
  function operatorsFor(name) {
    var k = kindOf(name);
    if (k.kind === "text") { return config.operators.text; }
    if (k.kind === "custom") { return config.operators[k.type]; }
    if (k.kind === "list") { return config.listOps; }
    if (k.kind === "subscribed") { return config.subscribedOps; }
    if (name === "machine_only") { return config.campaignOps; }
    return config.engagementOps;
  }
  function fieldOptions() {
    var t = config.text;
    var groups = [{ group: t.builtin, options: config.builtin }];
    if (config.custom.length) { groups.push({ group: t.customFields, options: config.custom }); }
    groups.push({ group: t.activity, options: [
      { value: "list", label: t.list }, { value: "subscribed", label: t.subscribed },
      { value: "opened", label: t.opened }, { value: "clicked", label: t.clicked }, { value: "sent", label: t.sent },
      { value: "bounced", label: t.bounced }, { value: "unsubscribed", label: t.unsubscribed },
      { value: "complained", label: t.complained }, { value: "activity", label: t.anyActivity },
      { value: "machine_only", label: t.machineOnly }
    ] });
    return groups;
  }

  function valueInput(cond, onChange) {
    var k = kindOf(cond.field);
    var op = cond.op;
    if (NO_VALUE.indexOf(op) >= 0) { delete cond.value; return null; }
    var input;
    if (k.kind === "list") {
      input = select(config.lists, cond.value, config.text.list);
    } else if (k.kind === "engagement" && (op === "campaign" || op === "not_campaign")) {
      input = select(config.campaigns, cond.value, "campaign");
    } else if ((k.kind === "engagement" || k.kind === "subscribed") && op.indexOf("within_days") >= 0) {
      input = el("input", { type: "number", min: "1", step: "1", inputmode: "numeric", "aria-label": "N" });
    } else if (k.kind === "subscribed" || k.type === "date") {
      input = el("input", { type: "date", "aria-label": "date" });
    } else if (k.type === "choice") {
      input = select(k.options.map(function (o) { return { value: o, label: o }; }), cond.value, "value");
    } else if (k.type === "number") {
      input = el("input", { type: "text", inputmode: "decimal", "aria-label": "value" });
    } else {
      input = el("input", { type: "text", "aria-label": "value" });
    }
    if (input.tagName === "INPUT" && cond.value !== undefined) { input.value = cond.value; }
    if (input.tagName === "SELECT") { cond.value = input.value; }
    input.addEventListener("input", function () { cond.value = input.value; onChange(false); });
    input.addEventListener("change", function () { cond.value = input.value; onChange(false); });
    return input;
  }

  function drawCondition(cond, parent, index, onChange) {
    var row = el("div", { "class": "segment-condition", style: "display:flex;flex-wrap:wrap;gap:.4rem;align-items:center;margin:.35rem 0" });
    var fieldSelect = select(fieldOptions(), cond.field, "field");
    fieldSelect.addEventListener("change", function () {
      cond.field = fieldSelect.value; cond.op = operatorsFor(cond.field)[0];
      delete cond.value; delete cond.list; delete cond.severity;
      onChange(true);
    });
    row.appendChild(fieldSelect);
    var ops = operatorsFor(cond.field);
    if (ops.indexOf(cond.op) < 0) { cond.op = ops[0]; }
    var opSelect = select(ops.map(function (o) { return { value: o, label: config.labels[o] || o }; }), cond.op, "operator");
    opSelect.addEventListener("change", function () { cond.op = opSelect.value; delete cond.value; onChange(true); });
    row.appendChild(opSelect);
    var input = valueInput(cond, onChange);
    if (input) { row.appendChild(input); }
    if (cond.field === "subscribed") {
      var lists = [{ value: "", label: config.text.anyList }].concat(config.lists);
      var listSelect = select(lists, cond.list || "", config.text.list);
      listSelect.addEventListener("change", function () {
        if (listSelect.value) { cond.list = Number(listSelect.value); } else { delete cond.list; }
        onChange(false);
      });
      row.appendChild(listSelect);
    }
    if (cond.field === "bounced") {
      var severitySelect = select(config.severities, cond.severity || "", config.text.severity);
      severitySelect.addEventListener("change", function () {
        if (severitySelect.value) { cond.severity = severitySelect.value; } else { delete cond.severity; }
        onChange(false);
      });
      row.appendChild(severitySelect);
    }
    var remove = el("button", { type: "button", "class": "btn btn-secondary", text: config.text.remove });
    remove.addEventListener("click", function () { parent.rules.splice(index, 1); onChange(true); });
    row.appendChild(remove);
    return row;
  }

  function drawGroup(group, parent, index, depth, onChange) {
    var box = el("div", { "class": "segment-group", style: "border-left:3px solid #c9d3ee;padding:.25rem 0 .25rem .75rem;margin:.4rem 0" });
    var head = el("div", { style: "display:flex;flex-wrap:wrap;gap:.4rem;align-items:center" });
    var opSelect = select([{ value: "and", label: config.text.and }, { value: "or", label: config.text.or }], group.op || "and", "combine");
    opSelect.addEventListener("change", function () { group.op = opSelect.value; onChange(false); });
    head.appendChild(opSelect);
    if (parent) {
      var remove = el("button", { type: "button", "class": "btn btn-secondary", text: config.text.remove });
      remove.addEventListener("click", function () { parent.rules.splice(index, 1); onChange(true); });
      head.appendChild(remove);
    }
    box.appendChild(head);
    group.rules.forEach(function (item, i) {
      box.appendChild(item && Array.isArray(item.rules)
        ? drawGroup(item, group, i, depth + 1, onChange)
        : drawCondition(item, group, i, onChange));
    });
    var actions = el("div", { style: "display:flex;gap:.4rem;margin-top:.35rem" });
    var addCondition = el("button", { type: "button", "class": "btn btn-secondary", "data-add": "condition", text: config.text.addCondition });
    addCondition.addEventListener("click", function () {
      group.rules.push({ field: "email", op: "contains" }); onChange(true);
    });
    actions.appendChild(addCondition);
    if (depth < 5) {
      var addGroup = el("button", { type: "button", "class": "btn btn-secondary", "data-add": "group", text: config.text.addGroup });
      addGroup.addEventListener("click", function () {
        group.rules.push({ op: group.op === "and" ? "or" : "and", rules: [{ field: "email", op: "contains" }] });
        onChange(true);
      });
      actions.appendChild(addGroup);
    }
    box.appendChild(actions);
    return box;
  }

  var timer = null;
  var sequence = 0;
  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function refreshCount() {
    var mine = ++sequence;
    fetch(countUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ rules: rule })
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (result) {
      if (mine !== sequence) { return; }
      errorsNode.innerHTML = "";
      if (result.ok) {
        document.querySelector("[data-count]").textContent = result.data.count;
        document.querySelector("[data-reachable]").textContent = result.data.reachable;
        root.setAttribute("data-count-value", result.data.count);
      } else {
        document.querySelector("[data-count]").textContent = "—";
        document.querySelector("[data-reachable]").textContent = "—";
        root.removeAttribute("data-count-value");
        (result.data.errors || []).forEach(function (message) {
          errorsNode.appendChild(el("li", { text: message }));
        });
      }
    }).catch(function () { /* the count is a convenience; saving still validates */ });
  }
  function changed(redraw) {
    field.value = JSON.stringify(rule);
    if (redraw) { draw(); }
    clearTimeout(timer);
    timer = setTimeout(refreshCount, 300);
  }
  function draw() {
    root.innerHTML = "";
    root.appendChild(drawGroup(rule, null, 0, 1, changed));
  }
  draw();
  changed(false);
})();
