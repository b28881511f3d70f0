// LoRA Manager: browser glue for the Compose tab.
// Sends the composed prompt to SDNext's generation tab, loads the recipe list the first time it
// is seen, and turns a click on a recipe card into a choice. Loaded like lora_manager.js.
(function loraManagerComposeInit() {
  'use strict';

  if (window.loraManagerSendToTxt2img) return;

  const RECIPE_LIST = 'lora_manager_compose_recipe_list';
  const RECIPE_REFRESH = 'lora_manager_compose_recipe_refresh';
  const RECIPE_PICK_ID = 'lora_manager_compose_recipe_pick_id';
  const RECIPE_PICK = 'lora_manager_compose_recipe_pick';
  const TAB_LABELS = { txt2img: 'Text', control: 'Control' };

  // lora_manager.js runs first (page scripts load in name order) and shares its DOM helpers
  const { root, byId, field } = window.loraManager;

  // Gradio reads a textbox on its `input` event; SDNext's own helper does exactly that.
  function fill(input, value) {
    input.value = value;
    if (typeof window.updateInput === 'function') window.updateInput(input);
    else input.dispatchEvent(new Event('input', { bubbles: true }));
  }

  // ModernUI (SDNext's default UI) hides the legacy Text tab unless told otherwise: then the
  // prompt goes to Control, the tab it generates from.
  function targetTabs() {
    const modern = Boolean(byId('control_nav'));
    const hideLegacy = Boolean(window.opts && window.opts.uiux_hide_legacy);
    return modern && hideLegacy ? ['control', 'txt2img'] : ['txt2img', 'control'];
  }

  function showTab(tab) {
    const nav = byId(`${tab}_nav`); // ModernUI sidebar button
    if (nav) { nav.click(); return; }
    const switcher = window[`switch_to_${tab}`]; // SDNext's standard UI
    if (typeof switcher === 'function') switcher();
  }

  // Returns its arguments plus a message, so the Python side (gradio `_js`) can show the outcome.
  function sendToTxt2img(prompt, negative) {
    const text = String(prompt || '');
    const neg = String(negative || '');
    if (!text.trim()) return [prompt, negative, 'Nothing to send: the composed prompt is empty.'];
    for (const tab of targetTabs()) {
      const promptBox = field(`${tab}_prompt`);
      if (!promptBox) continue;
      fill(promptBox, text);
      const negativeBox = field(`${tab}_neg_prompt`);
      if (negativeBox) fill(negativeBox, neg);
      showTab(tab);
      return [prompt, negative, `Sent to SDNext's ${TAB_LABELS[tab]} tab.`];
    }
    return [prompt, negative, 'Open SDNext to send prompts.'];
  }

  // --- recipes ----------------------------------------------------------------------------------

  function pickRecipe(card) {
    const id = card.getAttribute('data-id');
    const box = field(RECIPE_PICK_ID);
    const button = byId(RECIPE_PICK);
    if (!id || !box || !button) return;
    root().querySelectorAll('.lm-recipe.lm-active').forEach((el) => el.classList.remove('lm-active'));
    card.classList.add('lm-active');
    fill(box, id);
    button.click();
  }

  function recipeCard(event) {
    const path = typeof event.composedPath === 'function' ? event.composedPath() : [];
    const target = path.length && path[0] instanceof Element ? path[0] : event.target;
    const card = target && target.closest ? target.closest('.lm-recipe') : null;
    return card && card.closest(`#${RECIPE_LIST}`) ? card : null;
  }

  document.addEventListener('click', (event) => {
    const card = recipeCard(event);
    if (card) pickRecipe(card);
  });

  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter' && event.key !== ' ') return;
    const card = recipeCard(event);
    if (!card) return;
    event.preventDefault();
    pickRecipe(card);
  });

  // The list is filled the first time it becomes visible (no tab events fire under ModernUI).
  let watching = false;
  function watchRecipes() {
    const list = byId(RECIPE_LIST);
    if (!list) return false;
    const refresh = () => { const button = byId(RECIPE_REFRESH); if (button) button.click(); return Boolean(button); };
    if (!('IntersectionObserver' in window)) return refresh();
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && refresh()) observer.disconnect();
    });
    observer.observe(list);
    return true;
  }

  let tries = 0;
  const timer = setInterval(() => {
    tries += 1;
    if (!watching) watching = watchRecipes();
    if (watching || tries > 180) clearInterval(timer);
  }, 1000);

  // --- weights -------------------------------------------------------------------------------------
  // After every change the user makes to a weight slider (drag, each key typed, Enter, Tab, arrow
  // keys) the Python side re-reads all weights: one request at a time, and once more when a
  // slider changed while it ran, so the composed prompt ends on the values shown. Sliders set by
  // the Python side fire no DOM events (no loop).
  const APPLY_WEIGHTS = 'lora_manager_compose_apply_weights';
  const WEIGHT_SLIDER = /^lora_manager_compose_row\d+_(weight|te|unet)$/;
  const WEIGHT_SLIDER_PART = /_(weight|te|unet)$/;
  const STUCK_MS = 5000; // an answer that never came (server error) stops blocking after this
  let sentAt = 0;
  let pending = false;
  let retry = null;
  const typed = new WeakMap(); // slider input → its value at its last `input` event

  function applyWeights() {
    const waited = Date.now() - sentAt;
    if (sentAt && waited < STUCK_MS) {
      pending = true;
      if (!retry) retry = setTimeout(() => { retry = null; if (pending) applyWeights(); }, STUCK_MS - waited);
      return;
    }
    const button = byId(APPLY_WEIGHTS);
    pending = false;
    if (!button) return;
    sentAt = Date.now();
    button.click();
  }

  function applied() {
    sentAt = 0;
    if (!pending) return;
    // that answer was for older values: the prompt shows the newest again until theirs comes
    document.querySelectorAll('[id^="lora_manager_compose_row"][id$="_weight"]').forEach((slider) => {
      if (WEIGHT_SLIDER.test(slider.id)) showWeightNow(slider.id.replace(WEIGHT_SLIDER_PART, ''));
    });
    applyWeights();
  }

  // The composed prompt shows a weight as soon as it is changed, in the page: the server's answer
  // (same text) can take seconds while SDNext generates on a busy CPU, and Copy or Run in that
  // time must not take the old weight. Only an unambiguous case is rewritten here (the row is on
  // and its token is in the prompt once); the server's answer always follows and is the truth.
  const COMPOSED = 'lora_manager_compose_prompt';

  function weightText(value) {
    const number = Number(value);
    if (!Number.isFinite(number)) return null;
    const text = number.toFixed(2).replace(/0+$/, '').replace(/\.$/, ''); // as naming.format_weight
    return text === '-0' || text === '' ? '0' : text;
  }

  function sliderValue(rowId, part, given) {
    if (given && given.part === part) return weightText(given.value);
    const input = document.querySelector(`#${rowId}_${part} input[type=number]`);
    return input ? weightText(input.value) : null;
  }

  // given: {part, value} of the input just edited (its twin box may not show it yet)
  function showWeightNow(rowId, given) {
    const row = byId(rowId);
    const nameEl = row && row.querySelector('.lm-compose-token');
    const on = byId(`${rowId}_enabled`);
    const split = byId(`${rowId}_split`);
    const prompt = field(COMPOSED);
    if (!row || row.offsetParent === null) return; // a hidden row keeps a removed LoRA's title
    if (!nameEl || !prompt || (on && on.querySelector('input') && !on.querySelector('input').checked)) return;
    const name = nameEl.textContent;
    const splitOn = Boolean(split && split.querySelector('input') && split.querySelector('input').checked);
    let token;
    if (splitOn) {
      const te = sliderValue(rowId, 'te', given);
      const unet = sliderValue(rowId, 'unet', given);
      if (te === null || unet === null) return;
      token = `<lora:${name}:te=${te}:unet=${unet}>`;
    } else {
      const weight = sliderValue(rowId, 'weight', given);
      if (weight === null) return;
      token = `<lora:${name}:${weight}>`;
    }
    const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const pattern = new RegExp(`<lora:${escaped}(?::[^>]*)?>`, 'g');
    const found = prompt.value.match(pattern);
    if (!found || found.length !== 1 || found[0] === token) return;
    fill(prompt, prompt.value.replace(pattern, () => token));
  }

  function weightEdited(event) {
    const path = typeof event.composedPath === 'function' ? event.composedPath() : [];
    const target = path.length ? path[0] : event.target;
    if (!(target instanceof HTMLInputElement) || !target.closest) return;
    const slider = target.closest('[id^="lora_manager_compose_row"]');
    if (!slider || !WEIGHT_SLIDER.test(slider.id)) return;
    // shown in this very event: a busy page (SDNext's) runs timers a few hundred ms late
    if (event.type === 'input' && target.value !== '') {
      showWeightNow(slider.id.replace(WEIGHT_SLIDER_PART, ''), { part: WEIGHT_SLIDER.exec(slider.id)[1], value: target.value });
    }
    // after Gradio's own handlers: the value it sends is the one just typed, or the one its
    // blur handler clamped into the slider's range (a change that fires no `input`)
    setTimeout(() => {
      if (event.type !== 'input' && (!typed.has(target) || typed.get(target) === target.value)) return;
      typed.set(target, target.value);
      showWeightNow(slider.id.replace(WEIGHT_SLIDER_PART, ''));
      applyWeights();
    }, 0);
  }

  ['input', 'focusout'].forEach((type) => document.addEventListener(type, weightEdited));

  // Ticking "Separate TE/UNet" starts both at the weight shown, in the page first: a weights
  // request sent before the server's answer to the tick would otherwise carry their old values.
  document.addEventListener('change', (event) => {
    const target = event.target;
    if (!(target instanceof HTMLInputElement) || target.type !== 'checkbox' || !target.checked) return;
    const holder = target.closest('[id^="lora_manager_compose_row"]');
    const match = holder && /^(lora_manager_compose_row\d+)_split$/.exec(holder.id);
    if (!match) return;
    const weight = document.querySelector(`#${match[1]}_weight input[type=number]`);
    if (!weight) return;
    ['te', 'unet'].forEach((part) => {
      const box = document.querySelector(`#${match[1]}_${part} input[type=number]`);
      if (box && box.value !== weight.value) fill(box, weight.value);
    });
  }, true);

  // --- the composition kept in this browser ------------------------------------------------------
  // Every change of the composition writes its draft (JSON, "{}" for nothing) into a hidden box
  // whose change calls keep(); on load the kept draft goes into the restore box, which the Python
  // side turns back into rows. Per browser on purpose: several browsers open on one SDNext each
  // keep their own work (recipes are what is shared).
  const DRAFT_KEY = 'lora_manager.compose.draft';
  const RESTORE_BOX = 'lora_manager_compose_restore';
  let restored = false;

  function storage() {
    try { return window.localStorage; } catch (e) { return null; } // blocked by the browser's settings
  }

  function keep(text) {
    const store = storage();
    // until the kept draft is handed back, changes come from the page starting up, not the user
    if (!store || !restored || typeof text !== 'string' || !text) return;
    // the prompt boxes as they are now: the draft came with an answer that may have been sent
    // before the last words were typed (a weight's answer arriving after the negative's)
    const base = field('lora_manager_compose_base');
    const negative = field('lora_manager_compose_negative');
    let draft;
    try { draft = JSON.parse(text); } catch (e) { return; }
    if (base && negative && draft && typeof draft === 'object') {
      if (!draft.loras) draft = { version: 1, loras: [] };
      draft.prompt = base.value;
      draft.negative = negative.value;
      if (!draft.loras.length && !draft.prompt.trim() && !draft.negative.trim()) draft = {};
    }
    try {
      if (!draft || !Object.keys(draft).length) store.removeItem(DRAFT_KEY);
      else store.setItem(DRAFT_KEY, JSON.stringify(draft));
    } catch (e) { /* storage full or denied: the composition just is not kept */ }
  }

  function restore() {
    const box = field(RESTORE_BOX);
    if (!box) return false;
    const store = storage();
    const text = store ? store.getItem(DRAFT_KEY) : null;
    restored = true;
    if (!text) return true;
    fill(box, text);
    // the Python side empties the box once it has read it; a fill made before Gradio listened
    // is made again
    let again = 0;
    const check = setInterval(() => {
      again += 1;
      if (box.value !== text || again > 5) { clearInterval(check); return; }
      fill(box, '');
      fill(box, text);
    }, 2000);
    return true;
  }

  let restoreTries = 0;
  const restoreTimer = setInterval(() => {
    restoreTries += 1;
    if (restore() || restoreTries > 180) clearInterval(restoreTimer);
  }, 500);

  window.loraManagerSendToTxt2img = sendToTxt2img;
  // waiting(): a weights request is on its way or queued (tests wait for the server's answer)
  window.loraManagerCompose = { keep, restore, applied, waiting: () => Boolean(sentAt || pending), DRAFT_KEY };
}());
