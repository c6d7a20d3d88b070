// The bot's modals (forms): text inputs, short or paragraph, and selects in labels.
import { h } from "./render.js";

function inputs(components) {
  const out = [];
  for (const top of components || []) {
    if (top.type === 1) out.push({ label: top.components[0].label, input: top.components[0] });
    else if (top.type === 18) out.push({ label: top.label, description: top.description, input: top.component });
    else if (top.type === 10) out.push({ text: top.content });
  }
  return out;
}

function control(input) {
  const name = input.custom_id;
  if (input.type === 4) {
    const attrs = { name, placeholder: input.placeholder, required: input.required !== false,
      minlength: input.min_length, maxlength: input.max_length };
    return input.style === 2 ? h("textarea", attrs, input.value || "") : h("input", { ...attrs, value: input.value });
  }
  const options = (input.options || []).map((o) => h("option", { value: o.value, selected: !!o.default }, o.label));
  return h("select", { name, multiple: (input.max_values || 1) > 1 }, options);
}

// Shows the modal; resolves with {custom_id: value} on submit, or null when closed.
export function showModal(dialog, modal) {
  const form = dialog.querySelector("form");
  const fields = inputs(modal.components);
  form.replaceChildren(
    h("h1", {}, modal.title),
    ...fields.map((f) => (f.text ? h("p", {}, f.text) : h("div", {},
      h("label", { for: `modal-${f.input.custom_id}` }, f.label),
      f.description && h("div", { class: "subtext" }, f.description),
      Object.assign(control(f.input), { id: `modal-${f.input.custom_id}` })))),
    h("div", { class: "buttons" },
      h("button", { value: "cancel", formnovalidate: true, style: "background:#4e5058" }, "Cancel"),
      h("button", { value: "submit", style: "background:#5865f2", "data-testid": "modal-submit" }, "Submit")));
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "submit") { resolve(null); return; }
      const values = {};
      for (const f of fields.filter((x) => x.input)) {
        const el = form.querySelector(`[name="${f.input.custom_id}"]`);
        values[f.input.custom_id] = el.tagName === "SELECT" ? [...el.selectedOptions].map((o) => o.value) : el.value;
      }
      resolve(values);
    }, { once: true });
  });
}
