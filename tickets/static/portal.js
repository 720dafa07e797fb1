// Public portal: check the photo before it is sent (a refused upload would lose nothing typed,
// but a too-large one cannot be read back), and stop a second click from sending the form twice.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.public")) {
    const photo = form.querySelector("input[type=file]");
    const error = form.querySelector(".photo-error");
    const maxMb = Number(form.dataset.photoMaxMb || 0);
    const types = (form.dataset.photoTypes || "").split(",").filter(Boolean);
    const photoProblem = () => {
      const file = photo && photo.files && photo.files[0];
      if (!file) return "";
      const name = file.name.toLowerCase();
      if (types.length && !types.some((ext) => name.endsWith(ext))) return "照片仅支持 JPG、PNG 格式";
      if (maxMb && file.size > maxMb * 1024 * 1024) return `照片超过 ${maxMb} MB，请压缩后再选择`;
      return "";
    };
    if (photo && error) {
      photo.addEventListener("change", () => {
        const problem = photoProblem();
        error.textContent = problem;
        error.hidden = !problem;
      });
    }
    form.addEventListener("submit", (event) => {
      if (photo && photoProblem()) {
        event.preventDefault();
        return;
      }
      const button = form.querySelector("button[type=submit]");
      if (button) {
        // Disabled after this tick, so the button's own submission still goes out.
        setTimeout(() => { button.disabled = true; }, 0);
      }
    });
  }
});
