// Copy button of the setup page: served from this site so the page's Content-Security-Policy allows it.
document.querySelectorAll("[data-copy]").forEach(function (button) {
  button.addEventListener("click", function () {
    var text = document.getElementById(button.dataset.copy).textContent;
    var status = document.getElementById("copy-status");
    navigator.clipboard.writeText(text).then(
      function () { status.textContent = "Copied."; },
      function () { status.textContent = "Select the command and copy it by hand."; }
    );
  });
});
