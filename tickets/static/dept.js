// Department portal: check attachments before sending, so a too-large file never costs the typed reply.
"use strict";
document.querySelectorAll("form[data-max-files]").forEach(function (form) {
  form.addEventListener("submit", function (event) {
    var maxFiles = Number(form.dataset.maxFiles);
    var maxBytes = Number(form.dataset.maxFileMb) * 1024 * 1024;
    var input = form.querySelector("input[type=file]");
    var box = form.querySelector(".upload-error");
    var problem = "";
    var files = input ? Array.prototype.slice.call(input.files) : [];
    if (files.length > maxFiles) {
      problem = "附件最多 " + maxFiles + " 个";
    }
    files.forEach(function (file) {
      if (!problem && file.size > maxBytes) {
        problem = "“" + file.name + "”超过 " + form.dataset.maxFileMb + " MB 的大小上限";
      } else if (!problem && file.size === 0) {
        problem = "“" + file.name + "”是空文件";
      }
    });
    if (problem) {
      event.preventDefault();
      box.textContent = problem + "，请重新选择附件（已填写的内容仍保留）";
      box.hidden = false;
    }
  });
});
