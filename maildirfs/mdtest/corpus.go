package mdtest

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// CorpusOptions shape the messages Corpus generates.
type CorpusOptions struct {
	// Seed makes the corpus reproducible.
	Seed uint64
	// AttachmentRate is the fraction of messages (0..1) with a base64
	// attachment of random (incompressible) bytes, like a JPEG or a zip.
	AttachmentRate float64
	// MaxAttachment bounds an attachment's raw size (default 256 KiB).
	MaxAttachment int
	// HTMLRate is the fraction of messages sent as multipart/alternative
	// with an HTML copy of the text (most mail clients do this).
	HTMLRate float64
	// ISPHeaders adds what a message delivered at an ISP today carries
	// besides: Return-Path and Delivered-To (the delivery agent), an LMTP
	// Received hop, the MX's Authentication-Results, an ARC set on one in
	// three (forwarded, or through a big mailbox provider), and a DKIM
	// signature of a 2048-bit key (344 base64 characters) with its h= list
	// instead of the shorter one. Off, the corpus is what it always was.
	ISPHeaders bool
}

// words is a vocabulary with a natural-language-like frequency skew.
var words = strings.Fields(`the of and to a in is that for it as was with be by on not he this are or
his from at which but have an they you were her she there been one all we their has would when if so no
will can more about what up said out into some them could time only other new than then do its also two
may like these first any my now such our over me even most made after many before must through back
where much your way well down should because each just those people how too little state good very make
world still own see men work long get here between both life being under never day same another know
while last might us great old year off come since against go came right used take three meeting
project invoice delivery order account customer payment report attached please regards thanks hello
tomorrow monday friday schedule server backup storage mailbox quota contract review draft budget team
office call update question request support ticket issue release version price offer shipping address
confirm available week month today meeting agenda minutes notes summary details information following`)

var firstNames = strings.Fields("anna bernd carla david eva frank gina hans ines jonas karla lukas maria nils olga paul rita sven tina uwe")
var domains = strings.Fields("example.com example.net example.org mail.example.de shop.example.com lists.example.org")

// Corpus returns n realistic mail messages: RFC 5322 headers (Received
// chains, Message-ID, DKIM-like signature), an 8-bit text body with a
// quoted reply and a signature; for o.HTMLRate of them also an HTML copy
// (multipart/alternative), and for o.AttachmentRate of them a base64
// attachment of random bytes (multipart/mixed).
func Corpus(n int, o CorpusOptions) [][]byte {
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	if o.MaxAttachment <= 0 {
		o.MaxAttachment = 256 << 10
	}
	out := make([][]byte, n)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range out {
		out[i] = message(r, base.Add(time.Duration(i)*37*time.Second), o)
	}
	return out
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

// word picks with a Zipf-like skew: low indices are far more frequent.
func word(r *rand.Rand) string {
	x := r.Float64()
	return words[int(x*x*x*float64(len(words)))]
}

func addr(r *rand.Rand) string {
	return fmt.Sprintf("%s.%s@%s", pick(r, firstNames), pick(r, firstNames), pick(r, domains))
}

func sentence(r *rand.Rand) string {
	k := 5 + r.IntN(14)
	var b strings.Builder
	for j := range k {
		w := word(r)
		if j == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		b.WriteString(w)
		if j < k-1 {
			b.WriteByte(' ')
		}
	}
	b.WriteByte('.')
	return b.String()
}

// paragraph wraps sentences at 72 columns with prefix on each line.
func paragraph(r *rand.Rand, prefix string) string {
	var b strings.Builder
	line := prefix
	for range 2 + r.IntN(6) {
		for _, w := range strings.Fields(sentence(r)) {
			if len(line)+len(w)+1 > 72 {
				b.WriteString(line + "\n")
				line = prefix
			}
			if len(line) > len(prefix) {
				line += " "
			}
			line += w
		}
	}
	b.WriteString(line + "\n")
	return b.String()
}

func message(r *rand.Rand, t time.Time, o CorpusOptions) []byte {
	var b strings.Builder
	from, to := addr(r), addr(r)
	host := pick(r, domains)
	if o.ISPHeaders {
		fmt.Fprintf(&b, "Return-Path: <%s>\nDelivered-To: %s\n", from, to)
		fmt.Fprintf(&b, "Received: from mx1.%s\n\tby store%d.%s with LMTP\n\tid %s\n\t(envelope-from <%s>)\n\tfor <%s>; %s\n",
			host, r.IntN(8), host, randB64(r, 24), from, to, t.Format(time.RFC1123Z))
	}
	for h := range 2 + r.IntN(4) {
		fmt.Fprintf(&b, "Received: from mx%d.%s (mx%d.%s [192.0.2.%d])\n\tby mail.%s (Postfix) with ESMTPS id %X\n\tfor <%s>; %s\n",
			h, host, h, host, r.IntN(250)+1, pick(r, domains), r.Uint64()&0xffffffffff, to, t.Add(-time.Duration(h)*time.Second).Format(time.RFC1123Z))
	}
	if o.ISPHeaders {
		ispHeaders(&b, r, t, host, from)
	} else {
		fmt.Fprintf(&b, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=mail;\n\tbh=%s;\n\tb=%s\n",
			host, randB64(r, 32), wrap(randB64(r, 256), 72, "\t"))
	}
	fmt.Fprintf(&b, "Message-ID: <%d.%x@%s>\nDate: %s\nFrom: %s\nTo: %s\nSubject: %s %s %s\nMIME-Version: 1.0\n",
		t.Unix(), r.Uint64(), host, t.Format(time.RFC1123Z), from, to, word(r), word(r), word(r))
	attach := r.Float64() < o.AttachmentRate
	html := r.Float64() < o.HTMLRate
	boundary := fmt.Sprintf("=_%x", r.Uint64())
	alt := fmt.Sprintf("=_alt%x", r.Uint64())
	if attach {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\n\n--%s\n", boundary, boundary)
	}
	if html {
		fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=\"%s\"\n\n--%s\n", alt, alt)
	}
	b.WriteString("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
	greeting := "Hello " + pick(r, firstNames) + ","
	var paras []string
	for range 1 + r.IntN(5) {
		paras = append(paras, paragraph(r, ""))
	}
	var quoted []string
	if r.IntN(2) == 0 {
		for range 1 + r.IntN(4) {
			quoted = append(quoted, paragraph(r, ""))
		}
	}
	qhdr := fmt.Sprintf("On %s, %s wrote:", t.Add(-48*time.Hour).Format(time.RFC1123Z), to)
	sig := fmt.Sprintf("%s\nPhone +49 30 %07d", from, r.IntN(10000000))
	b.WriteString(greeting + "\n\n")
	for _, p := range paras {
		b.WriteString(p + "\n")
	}
	if quoted != nil {
		b.WriteString(qhdr + "\n")
		for _, p := range quoted {
			b.WriteString("> " + strings.ReplaceAll(strings.TrimSuffix(p, "\n"), "\n", "\n> ") + "\n>\n")
		}
	}
	b.WriteString("-- \n" + sig + "\n")
	if html {
		// The same text as HTML, as mail clients send it.
		fmt.Fprintf(&b, "\n--%s\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n", alt)
		b.WriteString("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body style=\"font-family: Arial, sans-serif; font-size: 14px;\">\n")
		b.WriteString("<div dir=\"ltr\"><p>" + greeting + "</p>\n")
		for _, p := range paras {
			b.WriteString("<p style=\"margin: 0 0 12px 0;\">" + strings.ReplaceAll(strings.TrimSuffix(p, "\n"), "\n", " ") + "</p>\n")
		}
		b.WriteString("<div class=\"signature\">-- <br>" + strings.ReplaceAll(sig, "\n", "<br>\n") + "</div></div>\n")
		if quoted != nil {
			b.WriteString("<div class=\"gmail_quote\"><div dir=\"ltr\" class=\"gmail_attr\">" + qhdr + "<br></div>\n<blockquote class=\"gmail_quote\" style=\"margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex\">\n")
			for _, p := range quoted {
				b.WriteString("<p>" + strings.ReplaceAll(strings.TrimSuffix(p, "\n"), "\n", " ") + "</p>\n")
			}
			b.WriteString("</blockquote></div>\n")
		}
		fmt.Fprintf(&b, "</body></html>\n\n--%s--\n", alt)
	}
	if attach {
		raw := make([]byte, 1024+r.IntN(o.MaxAttachment))
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		fmt.Fprintf(&b, "\n--%s\nContent-Type: application/octet-stream; name=\"file%d.bin\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment\n\n%s\n--%s--\n",
			boundary, r.IntN(100), wrap(base64.StdEncoding.EncodeToString(raw), 76, ""), boundary)
	}
	return []byte(b.String())
}

// ispHeaders writes Authentication-Results, sometimes an ARC set, and a
// DKIM signature of the sender's domain (2048-bit key).
func ispHeaders(b *strings.Builder, r *rand.Rand, t time.Time, host, from string) {
	d := from[strings.IndexByte(from, '@')+1:]
	fmt.Fprintf(b, "Authentication-Results: mx1.%s;\n\tdkim=pass (2048-bit key; unprotected) header.d=%s header.i=@%s header.a=rsa-sha256 header.s=s1 header.b=%s;\n\tspf=pass smtp.mailfrom=%s;\n\tdmarc=pass (p=reject dis=none) header.from=%s\n",
		host, d, d, randB64(r, 8), d, d)
	if r.IntN(3) == 0 {
		fmt.Fprintf(b, "ARC-Seal: i=1; a=rsa-sha256; t=%d; cv=none;\n\td=%s; s=arc-20240605;\n\tb=%s\n", t.Unix(), d, wrap(randB64(r, 344), 72, "\t"))
		fmt.Fprintf(b, "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=arc-20240605;\n\th=to:subject:message-id:date:from:mime-version:dkim-signature;\n\tbh=%s;\n\tb=%s\n",
			d, randB64(r, 44), wrap(randB64(r, 344), 72, "\t"))
		fmt.Fprintf(b, "ARC-Authentication-Results: i=1; mx.%s;\n\tdkim=pass header.i=@%s header.s=s1 header.b=%s;\n\tspf=pass (%s: domain of %s designates 192.0.2.%d as permitted sender) smtp.mailfrom=%s\n",
			d, d, randB64(r, 8), d, from, r.IntN(250)+1, from)
	}
	fmt.Fprintf(b, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=%s; s=s1;\n\th=From:To:Subject:Date:Message-ID:MIME-Version:Content-Type;\n\tbh=%s;\n\tb=%s\n",
		d, randB64(r, 44), wrap(randB64(r, 344), 72, "\t"))
}

func randB64(r *rand.Rand, n int) string {
	raw := make([]byte, n*3/4)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	return base64.StdEncoding.EncodeToString(raw)
}

func wrap(s string, w int, prefix string) string {
	var b strings.Builder
	for len(s) > w {
		b.WriteString(s[:w] + "\n" + prefix)
		s = s[w:]
	}
	b.WriteString(s)
	return b.String()
}
