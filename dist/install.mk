# install.mk: `make install` for mailnfs. Included by the top-level Makefile
# (`include dist/install.mk` after its first target, so `install` does not
# become the default goal; add `install: build` there) or used alone:
#
#   make -f dist/install.mk install [PREFIX=/usr/local] [DESTDIR=/tmp/stage] [BIN=bin] [SERVICE=auto]
#
# Installs (paths under $(DESTDIR)):
#   $(SBINDIR)/mailnfsd                      the server (required in $(BIN))
#   $(BINDIR)/mailnfs                        the front end's tool, if built
#   $(SYSTEMDUNITDIR)/mailnfsd.service       SERVICE=systemd (Linux)
#   $(RCDIR)/mailnfsd                        SERVICE=rcd (FreeBSD)
#   $(DOCDIR)/*.md, rc.conf.sample, exports.example (docs/*.md for the box;
#                                            cmd/mailnfs/README.md as mailnfs.md)
#
# SERVICE=auto picks systemd on Linux and rcd on FreeBSD; "all" installs
# both, "none" neither. The service files name the installed binary: their
# @SBINDIR@ and @PREFIX@ placeholders are replaced at install time.
#
# The syntax is the common subset of GNU make (4.0 or later) and BSD make:
# no conditionals, no $(shell); `!=` runs a command in both.

PREFIX ?= /usr/local
DESTDIR ?=
BIN ?= bin
SERVICE ?= auto
SBINDIR ?= $(PREFIX)/sbin
BINDIR ?= $(PREFIX)/bin
DOCDIR ?= $(PREFIX)/share/doc/mailnfs
# systemd reads /usr/local/lib/systemd/system as well as /lib/systemd/system.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# FreeBSD's rc(8) runs the scripts in $(PREFIX)/etc/rc.d (local_startup).
RCDIR ?= $(PREFIX)/etc/rc.d
INSTALL ?= install
DISTDIR ?= dist
DOCSRC ?= docs
UNAME_S != uname -s

.PHONY: install uninstall

install:
	@test -x "$(BIN)/mailnfsd" || { echo "install: $(BIN)/mailnfsd not built (make build, or BIN=dir)" >&2; exit 1; }
	$(INSTALL) -d "$(DESTDIR)$(SBINDIR)" "$(DESTDIR)$(DOCDIR)"
	$(INSTALL) -m 0755 "$(BIN)/mailnfsd" "$(DESTDIR)$(SBINDIR)/mailnfsd"
	@if [ -x "$(BIN)/mailnfs" ]; then \
		echo $(INSTALL) -d "$(DESTDIR)$(BINDIR)"; $(INSTALL) -d "$(DESTDIR)$(BINDIR)" && \
		echo $(INSTALL) -m 0755 "$(BIN)/mailnfs" "$(DESTDIR)$(BINDIR)/mailnfs"; \
		$(INSTALL) -m 0755 "$(BIN)/mailnfs" "$(DESTDIR)$(BINDIR)/mailnfs"; \
	fi
	@svc="$(SERVICE)"; \
	if [ "$$svc" = auto ]; then \
		case "$(UNAME_S)" in FreeBSD) svc=rcd ;; Linux) svc=systemd ;; *) svc=none ;; esac; \
	fi; \
	case "$$svc" in systemd|rcd|all|none) ;; *) echo "install: SERVICE=$$svc: want auto, systemd, rcd, all or none" >&2; exit 1 ;; esac; \
	if [ "$$svc" = systemd ] || [ "$$svc" = all ]; then \
		echo "install systemd unit -> $(DESTDIR)$(SYSTEMDUNITDIR)/mailnfsd.service"; \
		$(INSTALL) -d "$(DESTDIR)$(SYSTEMDUNITDIR)" && \
		sed -e 's#@SBINDIR@#$(SBINDIR)#g' -e 's#@PREFIX@#$(PREFIX)#g' -e 's#@DOCDIR@#$(DOCDIR)#g' \
			"$(DISTDIR)/systemd/mailnfsd.service" >"$(DESTDIR)$(SYSTEMDUNITDIR)/mailnfsd.service" && \
		chmod 0644 "$(DESTDIR)$(SYSTEMDUNITDIR)/mailnfsd.service" || exit 1; \
	fi; \
	if [ "$$svc" = rcd ] || [ "$$svc" = all ]; then \
		echo "install rc.d script -> $(DESTDIR)$(RCDIR)/mailnfsd"; \
		$(INSTALL) -d "$(DESTDIR)$(RCDIR)" && \
		sed -e 's#@SBINDIR@#$(SBINDIR)#g' -e 's#@PREFIX@#$(PREFIX)#g' -e 's#@DOCDIR@#$(DOCDIR)#g' \
			"$(DISTDIR)/freebsd/mailnfsd" >"$(DESTDIR)$(RCDIR)/mailnfsd" && \
		chmod 0555 "$(DESTDIR)$(RCDIR)/mailnfsd" || exit 1; \
	fi
	$(INSTALL) -m 0644 "$(DISTDIR)/rc.conf.sample" "$(DESTDIR)$(DOCDIR)/rc.conf.sample"
	@for f in "$(DOCSRC)/storage-box.md" "$(DOCSRC)/front-ends.md" "$(DOCSRC)/operations.md" exports.example; do \
		if [ -f "$$f" ]; then \
			echo $(INSTALL) -m 0644 "$$f" "$(DESTDIR)$(DOCDIR)/"; \
			$(INSTALL) -m 0644 "$$f" "$(DESTDIR)$(DOCDIR)/" || exit 1; \
		fi; \
	done
	@if [ -f cmd/mailnfs/README.md ]; then \
		echo $(INSTALL) -m 0644 cmd/mailnfs/README.md "$(DESTDIR)$(DOCDIR)/mailnfs.md"; \
		$(INSTALL) -m 0644 cmd/mailnfs/README.md "$(DESTDIR)$(DOCDIR)/mailnfs.md"; \
	fi

uninstall:
	rm -f "$(DESTDIR)$(SBINDIR)/mailnfsd" "$(DESTDIR)$(BINDIR)/mailnfs" \
		"$(DESTDIR)$(SYSTEMDUNITDIR)/mailnfsd.service" "$(DESTDIR)$(RCDIR)/mailnfsd"
	rm -rf "$(DESTDIR)$(DOCDIR)"
