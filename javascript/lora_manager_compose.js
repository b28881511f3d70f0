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

  window.loraManagerSendToTxt2img = sendToTxt2img;
}());
