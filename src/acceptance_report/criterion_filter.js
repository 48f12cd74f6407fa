// Criterion filter for the behave HTML report.
//
// Every scenario carries a tag @criterion.NAME. This script gives each
// scenario header a status badge, and puts a bar at the top of the page with
// a selector of criteria; choosing one shows only its scenarios. Clicking a
// @criterion tag chooses it too. The choice is kept in the page address as
// ?criterion=NAME, so a link can point at one criterion.
(function () {
  "use strict";

  var PREFIX = "criterion.";
  var STATUS_ORDER = ["failed", "error", "undefined", "skipped", "untested", "passed"];

  // html-pretty marks an erroneous scenario "error" and one a hook skipped
  // "untested"; a reviewer reads them as failed and skipped.
  var SHOWN_AS = { error: "failed", untested: "skipped" };

  function statusOf(section) {
    for (var i = 0; i < STATUS_ORDER.length; i++) {
      if (section.classList.contains(STATUS_ORDER[i])) {
        return SHOWN_AS[STATUS_ORDER[i]] || STATUS_ORDER[i];
      }
    }
    return "skipped";
  }

  function criteriaOf(section) {
    var found = [];
    section.querySelectorAll(".scenario-tags").forEach(function (tag) {
      var name = tag.textContent.trim().replace(/^@/, "");
      if (name.indexOf(PREFIX) === 0 && found.indexOf(name) < 0) {
        found.push(name);
        tag.classList.add("criterion-tag");
        tag.title = "Show only " + name;
        tag.dataset.criterion = name;
      }
    });
    return found;
  }

  function countText(counts) {
    return STATUS_ORDER.filter(function (s) { return counts[s]; })
      .map(function (s) { return counts[s] + " " + s; })
      .join(", ");
  }

  function addBadge(section, status) {
    var info = section.querySelector(".scenario-info");
    if (!info || info.querySelector(".criterion-status-badge")) {
      return;
    }
    var badge = document.createElement("span");
    badge.className = "criterion-status-badge status-" + status;
    badge.textContent = status.toUpperCase();
    info.insertBefore(badge, info.firstChild);
  }

  function readChoice() {
    var name = "";
    try {
      name = new URLSearchParams(window.location.search).get("criterion") || "";
    } catch (e) {
      return "";
    }
    name = name.replace(/^@/, "");
    return name && name.indexOf(PREFIX) !== 0 ? PREFIX + name : name;
  }

  function keepChoice(name) {
    try {
      var url = new URL(window.location.href);
      if (name) {
        url.searchParams.set("criterion", name);
      } else {
        url.searchParams.delete("criterion");
      }
      window.history.replaceState(window.history.state, "", url.href);
    } catch (e) {
      // A page opened from a file may refuse; the filter still applies.
    }
  }

  function build() {
    var sections = Array.prototype.slice.call(
      document.querySelectorAll("section.scenario-filter-container")
    );
    if (!sections.length || document.getElementById("criterion-filter")) {
      return;
    }
    var byCriterion = {};
    var order = [];
    sections.forEach(function (section) {
      var status = statusOf(section);
      var criteria = criteriaOf(section);
      section.dataset.status = status;
      section.dataset.criteria = criteria.join(" ");
      addBadge(section, status);
      criteria.forEach(function (name) {
        if (!byCriterion[name]) {
          byCriterion[name] = {};
          order.push(name);
        }
        byCriterion[name][status] = (byCriterion[name][status] || 0) + 1;
      });
    });

    var bar = document.createElement("nav");
    bar.id = "criterion-filter";
    bar.setAttribute("aria-label", "Filter scenarios by criterion");
    var label = document.createElement("label");
    label.textContent = "Criterion ";
    label.htmlFor = "criterion-select";
    var select = document.createElement("select");
    select.id = "criterion-select";
    var all = document.createElement("option");
    all.value = "";
    all.textContent = "all criteria (" + order.length + ")";
    select.appendChild(all);
    order.forEach(function (name) {
      var option = document.createElement("option");
      option.value = name;
      option.textContent = name + " \u2014 " + countText(byCriterion[name]);
      select.appendChild(option);
    });
    var shown = document.createElement("span");
    shown.id = "criterion-shown";
    label.appendChild(select);
    bar.appendChild(label);
    bar.appendChild(shown);
    document.body.insertBefore(bar, document.body.firstChild);

    function apply(name) {
      var counts = {};
      var visible = 0;
      sections.forEach(function (section) {
        var match = !name || section.dataset.criteria.split(" ").indexOf(name) >= 0;
        section.hidden = !match;
        section.classList.toggle("criterion-filtered-out", !match);
        if (match) {
          visible += 1;
          counts[section.dataset.status] = (counts[section.dataset.status] || 0) + 1;
        }
      });
      if (name && !byCriterion[name]) {
        shown.textContent = "No scenario carries @" + name + ".";
      } else {
        shown.textContent = "Showing " + visible + " of " + sections.length +
          " scenarios: " + (countText(counts) || "none");
      }
      shown.dataset.visible = String(visible);
      if (select.value !== name) {
        select.value = byCriterion[name] ? name : "";
      }
      document.body.dataset.criterion = name;
    }

    select.addEventListener("change", function () {
      keepChoice(select.value);
      apply(select.value);
    });
    document.querySelectorAll(".criterion-tag").forEach(function (tag) {
      tag.addEventListener("click", function (event) {
        event.stopPropagation();
        var name = tag.dataset.criterion === select.value ? "" : tag.dataset.criterion;
        keepChoice(name);
        apply(name);
      });
    });
    apply(readChoice());
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", build);
  } else {
    build();
  }
})();
