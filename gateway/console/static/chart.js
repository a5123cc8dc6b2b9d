// Usage by day as a small inline SVG bar chart (credits per day), with a title on every bar.
const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function isoDay(date) { return date.toISOString().slice(0, 10); }

export function usageChart(usage) {
  const byDay = new Map(usage.days.map((d) => [d.date, d]));
  const end = new Date(`${usage.to}T00:00:00Z`);
  const days = [];
  for (let i = 29; i >= 0; i -= 1) {
    const day = isoDay(new Date(end.getTime() - i * 86400000));
    days.push(byDay.get(day) || { date: day, pages: 0, credits: 0 });
  }
  const width = 300, height = 110, top = 14, bottom = 18, left = 4;
  const max = Math.max(1, ...days.map((d) => d.credits));
  const barW = (width - left) / days.length;
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `Credits per day over 30 days: ${usage.total.credits} credits, ${usage.total.pages} pages in all`,
  });
  days.forEach((d, i) => {
    const h = ((height - top - bottom) * d.credits) / max;
    const bar = el("rect", {
      x: (left + i * barW + 1).toFixed(1), y: (height - bottom - h).toFixed(1),
      width: Math.max(1, barW - 2).toFixed(1), height: Math.max(d.credits ? 1 : 0, h).toFixed(1),
      fill: "#1f4e79", class: "bar",
    });
    bar.appendChild(el("title", {}, `${d.date}: ${d.credits} credits, ${d.pages} pages`));
    svg.appendChild(bar);
  });
  svg.appendChild(el("line", { x1: 0, x2: width, y1: height - bottom, y2: height - bottom, stroke: "#8795a3" }));
  svg.appendChild(el("text", { x: 2, y: 10, "font-size": 9, fill: "#5b6775" }, `max ${max} credits/day`));
  svg.appendChild(el("text", { x: 2, y: height - 4, "font-size": 9, fill: "#5b6775" }, days[0].date));
  svg.appendChild(el("text", { x: width - 2, y: height - 4, "font-size": 9, fill: "#5b6775", "text-anchor": "end" }, days[days.length - 1].date));
  const wrap = document.createElement("div");
  wrap.className = "chart";
  wrap.appendChild(svg);
  const total = document.createElement("p");
  total.className = "muted";
  total.textContent = `${usage.total.credits} credits, ${usage.total.pages} pages in all`;
  wrap.appendChild(total);
  return wrap;
}
