// Flag the prediction form's empty fields before it is sent: they are scored as missing values.
(function () {
  var form = document.getElementById("predict-form");
  var warning = document.getElementById("empty-warning");
  if (!form || !warning) { return; }
  function check() {
    var empty = [];
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.type === "submit" || el.type === "hidden") { return; }
      var blank = String(el.value).trim() === "";
      el.classList.toggle("empty-field", blank);
      if (blank) { empty.push(el.name); }
    });
    warning.hidden = empty.length === 0;
    warning.textContent = empty.length === 0 ? "" :
      empty.length + " field(s) empty, scored as missing: " + empty.join(", ") + ".";
  }
  form.addEventListener("input", check);
  form.addEventListener("change", check);
  check();
})();
