//! Rebuilding schema history from git: the schema folder as it was at each commit on a reference's history.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ursa_avro::schema::{LogicalTypes, ParseOptions, SchemaSet, SourceFile};

use crate::ToolError;

/// The schema folder at one commit.
#[derive(Debug)]
pub struct Revision {
    /// The commit id.
    pub commit: String,
    /// The parsed schemas at that commit.
    pub set: SchemaSet,
}

fn git(root: &Path, args: &[&str]) -> Result<String, ToolError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| ToolError::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(ToolError::Git(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The repository root containing `dir`, and `dir` relative to it.
pub fn locate(dir: &Path) -> Result<(PathBuf, PathBuf), ToolError> {
    let abs = std::path::absolute(dir).map_err(|source| ToolError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let top = git(&abs, &["rev-parse", "--show-toplevel"])?;
    let root = PathBuf::from(top.trim());
    let root = root.canonicalize().unwrap_or(root);
    let abs = abs.canonicalize().unwrap_or(abs);
    let rel = abs
        .strip_prefix(&root)
        .map(Path::to_path_buf)
        .map_err(|_| {
            ToolError::Git(format!(
                "{} is not inside {}",
                abs.display(),
                root.display()
            ))
        })?;
    Ok((root, rel))
}

/// Reads blobs through one `git cat-file --batch` process.
fn read_blobs(root: &Path, ids: &[String]) -> Result<HashMap<String, String>, ToolError> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ToolError::Git(format!("cannot run git cat-file: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| ToolError::Git("no stdin".into()))?;
    let request: String = ids.iter().map(|id| format!("{id}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(request.as_bytes()));
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ToolError::Git("no stdout".into()))?;
    let mut reader = BufReader::new(stdout);
    let mut out = HashMap::new();
    for id in ids {
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .map_err(|e| ToolError::Git(e.to_string()))?;
        let parts: Vec<&str> = header.split_whitespace().collect();
        let size: usize = match parts.as_slice() {
            [_, "blob", size] => size
                .parse()
                .map_err(|_| ToolError::Git(format!("bad cat-file header {header:?}")))?,
            _ => {
                return Err(ToolError::Git(format!(
                    "cannot read blob {id}: {}",
                    header.trim()
                )));
            }
        };
        let mut body = vec![0u8; size + 1];
        reader
            .read_exact(&mut body)
            .map_err(|e| ToolError::Git(e.to_string()))?;
        body.pop();
        out.insert(id.clone(), String::from_utf8_lossy(&body).into_owned());
    }
    let _ = writer.join();
    let _ = child.wait();
    Ok(out)
}

/// The schema folder `dir` (relative to the repository `root`) at each commit of `reference` that changed it,
/// oldest first; with `all == false`, only at `reference` itself. Revisions whose schemas do not parse are
/// skipped and reported in the second value.
pub fn revisions(
    root: &Path,
    dir: &Path,
    reference: &str,
    all: bool,
) -> Result<(Vec<Revision>, Vec<String>), ToolError> {
    let dir_arg = dir.to_string_lossy().replace('\\', "/");
    let dir_arg = if dir_arg.is_empty() {
        ".".to_owned()
    } else {
        dir_arg
    };
    let tip = git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{reference}^{{commit}}"),
        ],
    )
    .map_err(|_| ToolError::Git(format!("unknown git reference `{reference}`")))?;
    let commits: Vec<String> = if all {
        git(root, &["rev-list", "--reverse", tip.trim(), "--", &dir_arg])?
            .lines()
            .map(str::to_owned)
            .collect()
    } else {
        vec![tip.trim().to_owned()]
    };
    // Every (commit, path, blob) first, then all blobs in one batch.
    let mut trees: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut blob_ids: Vec<String> = Vec::new();
    for c in &commits {
        let listing = git(root, &["ls-tree", "-r", "--full-tree", c, "--", &dir_arg])?;
        let mut files = Vec::new();
        for line in listing.lines() {
            let Some((meta, path)) = line.split_once('\t') else {
                continue;
            };
            let mut m = meta.split_whitespace();
            let (Some(_mode), Some("blob"), Some(id)) = (m.next(), m.next(), m.next()) else {
                continue;
            };
            if path.ends_with(".avsc") {
                files.push((path.to_owned(), id.to_owned()));
                blob_ids.push(id.to_owned());
            }
        }
        trees.push((c.clone(), files));
    }
    blob_ids.sort();
    blob_ids.dedup();
    let blobs = read_blobs(root, &blob_ids)?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (commit, files) in trees {
        if files.is_empty() {
            continue;
        }
        let short = &commit[..commit.len().min(10)];
        let sources = files
            .iter()
            .map(|(path, id)| {
                SourceFile::new(
                    format!("{short}:{path}"),
                    blobs.get(id).cloned().unwrap_or_default(),
                )
            })
            .collect();
        match SchemaSet::parse(
            sources,
            ParseOptions {
                logical_types: LogicalTypes::Lenient,
            },
        ) {
            Ok(set) => out.push(Revision { commit, set }),
            Err(e) => skipped.push(format!(
                "skipped commit {short}: its schemas do not parse: {e}"
            )),
        }
    }
    Ok((out, skipped))
}
