// Validates every object in the given manifest files offline against the
// Kubernetes OpenAPI schemas shipped in kubernetes-models. Exits non-zero on the
// first invalid object, naming it and the schema error.
// Usage: node validate.mjs FILE.yaml...
import fs from "node:fs";
import yaml from "js-yaml";

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const module = await import(group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`);
  if (!module[kind]) throw new Error(`no schema for ${apiVersion} ${kind}`);
  return module[kind];
}

export async function validate(obj) {
  const Model = await modelFor(obj.apiVersion, obj.kind);
  new Model(obj).validate();
}

async function main(files) {
  let count = 0;
  for (const file of files) {
    for (const obj of yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean)) {
      const name = `${file}: ${obj.kind}/${obj.metadata?.name}`;
      try {
        await validate(obj);
      } catch (e) {
        console.error(`invalid ${name}: ${e.message}`);
        process.exit(1);
      }
      console.log(`valid   ${name}`);
      count++;
    }
  }
  // The check must be able to fail: a broken copy of a DaemonSet is rejected.
  const ds = yaml.loadAll(fs.readFileSync(files[0], "utf8")).find((o) => o && o.kind === "DaemonSet");
  if (ds) {
    const broken = structuredClone(ds);
    broken.spec.template.spec.containers[0].ports[0].containerPort = "not-a-port";
    try {
      await validate(broken);
      console.error("a broken DaemonSet passed validation: the validator is not checking");
      process.exit(1);
    } catch {
      console.log("rejected a deliberately broken DaemonSet (control)");
    }
  }
  if (count === 0) {
    console.error("no manifests found");
    process.exit(1);
  }
  console.log(`${count} manifests valid`);
}

await main(process.argv.slice(2));
